"""Server dumps are rotated like SQLite backups, in the backup directory (issue 21 item 23).

``--keep-backups`` was silently ignored for PostgreSQL/MySQL dumps, and dumps defaulted to
the working directory (the test suite left them in the repository root).  Now automatic dumps
are named ``<database>.<identity>.<time>.<revision>.<suffix>`` and the oldest of the same
database beyond ``--keep-backups`` are deleted; other files in the directory (``--out`` files,
another database's dumps, safety dumps) are never touched; the default directory is
``$XDG_STATE_HOME/llm-proxy-db/backups``, never the working directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli.app import app
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for
from tests.safety_helpers import seed, skip_without_pg_client
from tests.test_cli import db_options


@pytest.fixture
def server_db(settings: Settings) -> Settings:
    if settings.is_sqlite:
        pytest.skip("SQLite's rotation is tested in tests/test_backup.py")
    skip_without_pg_client(settings)
    commands.upgrade(settings, no_backup=True)
    seed(settings, projects=1, tokens_each=1, events=1)
    return settings


def _backup(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(app, [*db_options(settings), "db", "backup", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip().removeprefix("backup: ")


def test_keep_backups_rotates_server_dumps(server_db: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "dumps"
    folder.mkdir()
    suffix = dialect_for(server_db).backup_suffix()
    strangers = [folder / f"other.0123456789.20200101T000000Z.0007.{suffix}", folder / f"kept.{suffix}"]
    for path in strangers:
        path.write_bytes(b"not ours")
    explicit = _backup(server_db, "--out", str(folder / f"explicit.{suffix}"))
    taken = [_backup(server_db, "--backup-dir", str(folder), "--keep-backups", "2") for _ in range(3)]
    left = sorted(path.name for path in folder.iterdir())
    assert left == sorted([Path(explicit).name, *(p.name for p in strangers), *(Path(p).name for p in taken[1:])])
    assert Path(taken[0]).name.startswith(server_db.sqlalchemy_url().database + ".")


def test_dumps_default_to_the_state_directory_never_the_working_directory(
    server_db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, state = tmp_path / "work", tmp_path / "state"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("LLM_PROXY_BACKUP_DIR", raising=False)
    written = Path(_backup(server_db))
    assert written.parent == state / "llm-proxy-db" / "backups"
    assert list(work.iterdir()) == []
    assert written.parent.stat().st_mode & 0o077 == 0
