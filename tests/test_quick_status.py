"""The startup check at head answers from one driver read, without Alembic or SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from llm_proxy_db import commands, quick_status
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.migration import revisions

NO_HEAVY_IMPORTS = """
import json, sys
from llm_proxy_db.cli import fast_path
output = fast_path.output_at_head(["--database-path", sys.argv[1], "migrate", "status", "--json"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "sqlalchemy", "typer"))
print(json.dumps({"status": json.loads(output), "heavy": heavy}))
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
        "detected_state": None,
        "adopted_from": None,
        "tokens_without_id": 0,
        "tokens_with_empty_id": 0,
        "partly_applied": None,
        "unfinished": [],
        "topology": None,
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


def test_status_at_head_imports_neither_alembic_nor_sqlalchemy_nor_typer(sqlite_settings: Settings) -> None:
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


def test_adoption_table_name_is_the_adoption_records() -> None:
    """An adopted database always takes the full path (its status shows the record)."""
    from llm_proxy_db.migration.adoption_record import ADOPTION_TABLE

    assert quick_status.ADOPTION_TABLE == ADOPTION_TABLE


def test_adopted_database_status_takes_the_full_path(sqlite_settings: Settings) -> None:
    """At head but adopted: the quick check steps aside so the status shows the record."""
    commands.upgrade(sqlite_settings)
    with connect(sqlite_settings) as connection:
        connection.exec_driver_sql(f"CREATE TABLE {quick_status.ADOPTION_TABLE} (id INTEGER)")
        connection.commit()
    assert not quick_status.at_head(sqlite_settings)
    assert quick_status.at_head(sqlite_settings, adopted_ok=True)  # startup needs no record
