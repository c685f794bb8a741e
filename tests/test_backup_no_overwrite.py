"""A backup never replaces nor follows what already has its name (issue 21 item 21).

A server's ``db backup --out`` onto a dangling symlink replaced the link, where SQLite
refused.  One policy on every dialect: a name taken by a file, a directory or a symlink
(a dangling one too) is refused with exit 8, and the link and its (absent) target are left
as they were.  The last step that gives a backup its name claims it atomically
(:func:`llm_proxy_db.files.take_name`), so a name taken after the check is refused too.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_proxy_db import commands, files
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import BackupError
from tests.safety_helpers import seed, skip_without_pg_client
from tests.test_cli import db_options


@pytest.mark.parametrize("kind", ["dangling symlink", "symlink to a file", "file"])
def test_backup_out_onto_a_taken_name_is_refused(settings: Settings, tmp_path: Path, kind: str) -> None:
    skip_without_pg_client(settings)
    commands.upgrade(settings, no_backup=True)
    seed(settings)
    out, elsewhere = tmp_path / "backup.out", tmp_path / "elsewhere"
    if kind == "file":
        out.write_bytes(b"keep me")
    else:
        if kind == "symlink to a file":
            elsewhere.write_bytes(b"keep me")
        out.symlink_to(elsewhere)
    result = CliRunner().invoke(app, [*db_options(settings), "db", "backup", "--out", str(out)])
    assert result.exit_code == 8, result.output
    assert "already exists" in result.output and "Hint: " in result.output
    if kind == "file":
        assert out.read_bytes() == b"keep me"
    else:
        assert out.is_symlink() and os.readlink(out) == str(elsewhere)
        assert elsewhere.exists() == (kind == "symlink to a file")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_the_name_is_claimed_atomically(tmp_path: Path) -> None:
    """A name taken between a caller's check and the rename is not replaced."""
    final = tmp_path / "taken"
    final.symlink_to(tmp_path / "nowhere")
    with pytest.raises(BackupError, match="already exists"), files.written_then_renamed(final, None) as temporary:
        temporary.write_bytes(b"dump")
    assert final.is_symlink() and not (tmp_path / "nowhere").exists()
    assert list(tmp_path.iterdir()) == [final]
