"""Lint the PostgreSQL SQL of every revision with squawk; accepted findings come from docs/ci.md.

Each revision's upgrade SQL (``migrate up --sql --from PREV --to REV``, PostgreSQL dialect)
is written to its own file and checked by ``squawk``.  The findings we accept are the table
"Accepted squawk findings" in docs/ci.md (rule, revisions, why): a rule is excluded only for
the revisions listed there (``all`` for every revision), so a new revision that trips it
fails.  Usage: ``python scripts/squawk_revisions.py [SQUAWK_BINARY]`` (exit code: squawk's).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import postgresql

ROOT = Path(__file__).resolve().parent.parent
CI_DOC = ROOT / "docs" / "ci.md"
SECTION = "## Accepted squawk findings\n"
DEFAULT_SQUAWK = ROOT / ".tools" / "node_modules" / ".bin" / "squawk"
PG_VERSION = "14.0"  # the oldest server version CI runs


def accepted() -> dict[str, set[str]]:
    """rule -> revisions it is accepted for (``all`` for every revision), from docs/ci.md."""
    body = CI_DOC.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")][2:]
    table: dict[str, set[str]] = {}
    for row in rows:
        rule, revisions, _why = (cell.strip() for cell in row.strip("|").split("|"))
        table[rule.strip("`")] = {rev.strip().strip("`") for rev in revisions.split(",")}
    return table


def revision_sql(directory: Path) -> list[tuple[str, Path]]:
    """(revision, file holding its PostgreSQL upgrade SQL), oldest first."""
    settings = Settings(driver="postgres", database_url=postgresql.parse_database_url("postgres://squawk@localhost/squawk"))
    files, previous = [], None
    for info in commands.history():
        path = directory / f"{info.id}.sql"
        path.write_text(commands.upgrade_sql(settings, info.id, previous), encoding="utf-8")
        files.append((info.id, path))
        previous = info.id
    return files


def main(argv: list[str]) -> int:
    """Run squawk on every revision's SQL; the worst exit code wins."""
    squawk = argv[0] if argv else str(DEFAULT_SQUAWK)
    rules = accepted()
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for revision, path in revision_sql(Path(tmp)):
            excluded = sorted(rule for rule, revs in rules.items() if "all" in revs or revision in revs)
            command = [squawk, f"--pg-version={PG_VERSION}", f"--exclude={','.join(excluded)}", str(path)]
            result = subprocess.run(command, check=False, env={**os.environ, "NO_COLOR": "1"})
            worst = max(worst, result.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
