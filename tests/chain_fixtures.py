"""Broken revision chains for ``migrate verify`` tests: copies of ``alembic/`` in a tmp dir.

Each helper changes the copy the way a careless contributor would (a second head, an edited
released revision, a revision without a downgrade ...), so the tests read as the mistake.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from llm_proxy_db.config.paths import script_location


def copy_chain(tmp_path: Path) -> Path:
    """A private copy of the real scripts directory (env.py, versions/, the manifest)."""
    target = tmp_path / "alembic"
    shutil.copytree(script_location(), target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def add_revision(
    location: Path,
    revision: str,
    down_revision: str | None,
    upgrade: str = "pass",
    downgrade: str | None = "pass",
    slug: str = "fixture",
    filename: str | None = None,
) -> Path:
    """Write a revision file; ``downgrade=None`` leaves the function out altogether."""
    header = f'''\
        """{slug} (test fixture)

        Revision ID: {revision}
        Revises: {down_revision or ""}
        """

        import sqlalchemy as sa
        from alembic import context, op

        revision = {revision!r}
        down_revision = {down_revision!r}
        branch_labels = None
        depends_on = None
        '''
    text = textwrap.dedent(header) + f"\n\ndef upgrade():\n{textwrap.indent(upgrade, '    ')}\n"
    if downgrade is not None:
        text += f"\n\ndef downgrade():\n{textwrap.indent(downgrade, '    ')}\n"
    path = location / "versions" / (filename or f"{revision}_{slug}.py")
    path.write_text(text, encoding="utf-8")
    return path


def edit(path: Path, old: str, new: str) -> None:
    """Replace one exact piece of a revision file (it must be there)."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def revision_file(location: Path, revision: str) -> Path:
    """The file of ``revision`` in the copy."""
    (path,) = (location / "versions").glob(f"{revision}_*.py")
    return path
