"""Write the committed known-state fingerprints (``llm_proxy_db/adoption/known_state_prints/*.json``).

    python scripts/update_known_states.py [--postgres-url URL] [--mysql-url URL]

Derives every revision's fingerprint by running the revisions (SQLite on a temporary file;
PostgreSQL in a scratch schema that is rolled back; MySQL/MariaDB on a scratch database) and
records it for the server family it ran on.  The server URLs default to
``LLM_PROXY_TEST_POSTGRES_URL`` and ``LLM_PROXY_TEST_MYSQL_URL``.  Run it after changing a
revision (with ``llm-proxy-db migrate manifest --update``); ``tests/test_known_state_data.py`` and
``llm-proxy-db migrate verify`` fail until it has been run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from llm_proxy_db.adoption import known_state_data, known_states
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for


def main(argv: list[str] | None = None) -> int:
    """Derive and write the data for SQLite and each server given."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("LLM_PROXY_TEST_POSTGRES_URL"))
    parser.add_argument("--mysql-url", default=os.environ.get("LLM_PROXY_TEST_MYSQL_URL"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llm-proxy-states-") as directory:
        record(Settings(driver="sqlite", database_path=Path(directory) / "states.db"))
    for driver, url in (("postgres", args.postgres_url), ("mysql", args.mysql_url)):
        if url:
            record(Settings(driver=driver, database_url=dialect_for(driver).parse_database_url(url)))
        else:
            print(f"{driver}: no server URL given, its entry is left as it is", file=sys.stderr)
    return 0


def record(settings: Settings) -> None:
    """Derive the fingerprints on ``settings``' server and write them for its family."""
    with connect(settings, foreign_keys=False) as connection:
        prints = known_states.revision_fingerprints(connection, derive=True)
        family = known_state_data.family_of(connection)
        version = ".".join(str(part) for part in connection.dialect.server_version_info or ())
        name = connection.dialect.name
    dropped = known_state_data.write(name, family, version or "unknown", prints)
    print(f"{name}: wrote {family} ({len(prints)} revisions) to {known_state_data.data_file(name)}")
    if dropped:
        print(f"{name}: dropped stale entries {', '.join(dropped)} (derived from other revision files)")


if __name__ == "__main__":
    raise SystemExit(main())
