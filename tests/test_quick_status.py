"""The startup check at head answers from one driver read, without Alembic or SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from llm_proxy_db import commands, quick_status, revisions
from llm_proxy_db.settings import Settings

NO_HEAVY_IMPORTS = """
import json, sys
from llm_proxy_db import commands
from llm_proxy_db.settings import Settings
from pathlib import Path
status = commands.status(Settings(driver="sqlite", database_path=Path(sys.argv[1])))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "sqlalchemy"))
print(json.dumps({"status": status.as_dict(), "heavy": heavy}))
"""


def test_manifest_head_matches_the_scripts() -> None:
    """The head the startup check trusts is the scripts' head (migrate verify checks it too)."""
    assert revisions.head_revision() == quick_status.head_revision()


def test_at_head_only_for_the_head_revision(settings: Settings) -> None:
    """Empty, older and head databases: only head short-circuits."""
    assert not quick_status.at_head(settings)
    commands.upgrade(settings, "0006")
    assert not quick_status.at_head(settings)
    assert commands.status(settings).pending == ["0007"]
    commands.upgrade(settings)
    assert quick_status.at_head(settings)
    assert commands.status(settings).as_dict() == {
        "database": settings.describe(),
        "current_revision": "0007",
        "head_revision": "0007",
        "pending": [],
        "up_to_date": True,
        "checksum_warnings": [],
    }


def test_not_sure_means_false(tmp_path: Path) -> None:
    """Missing files, other files and unreachable servers leave the answer to the full path."""
    missing = Settings(driver="sqlite", database_path=tmp_path / "none.db")
    other = tmp_path / "notes.txt"
    other.write_text("not a database, but long enough to have a header " * 4)
    unreachable = Settings(
        driver="postgres", database_url=sa.make_url("postgresql+psycopg://u@127.0.0.1:1/db")
    )
    assert not quick_status.at_head(missing)
    assert not missing.database_path.exists()  # reads never create
    assert not quick_status.at_head(Settings(driver="sqlite", database_path=other))
    assert not quick_status.at_head(unreachable)


def test_status_at_head_imports_neither_alembic_nor_sqlalchemy(sqlite_settings: Settings) -> None:
    """The whole point: a fresh process answers at head without the heavy imports."""
    commands.upgrade(sqlite_settings)
    out = subprocess.run(
        [sys.executable, "-c", NO_HEAVY_IMPORTS, str(sqlite_settings.database_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(out.stdout)
    assert answer["status"]["up_to_date"] is True
    assert answer["heavy"] == []
