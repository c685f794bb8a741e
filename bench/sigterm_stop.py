"""SQLite: how long after SIGTERM a migration inside 0005's table rebuild exits (issue 21, item 14).

    python bench/sigterm_stop.py                 # 1M tokens (the size of the report: 23.8 s before)
    python bench/sigterm_stop.py --tokens 100000

A database at 0004 with ``--tokens`` tokens; ``llm-proxy migrate up --no-backup`` runs in a
child process; once it prints that 0005 started, it gets SIGTERM after ``--delay`` seconds
(inside the copy).  Printed: seconds from the signal to the exit, the exit code (143), the
"interrupted" line, and whether the database is still at 0004 with every token.
The Kubernetes grace period is 30 s; the target is about 1 s.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_proxy_db import commands  # noqa: E402
from llm_proxy_db.config.settings import Settings  # noqa: E402

CLI = Path(sys.executable).with_name("llm-proxy")


def build(path: Path, tokens: int) -> None:
    """A database at 0004 holding ``tokens`` tokens of one project."""
    commands.upgrade(Settings(driver="sqlite", database_path=path), "0004", no_backup=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("INSERT INTO projects (id, name, openai_api_key) VALUES ('p1', 'one', 'k')")
        connection.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO tokens (token, project_id) SELECT 'token-' || i, 'p1' FROM n",
            (tokens,),
        )
    finally:
        connection.close()


def measure(path: Path, delay: float) -> dict[str, object]:
    """Run the upgrade, SIGTERM it inside 0005, and time its exit."""
    env = {"DB_DRIVER": "sqlite", "DATABASE_PATH": str(path), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen([str(CLI), "migrate", "up", "--no-backup"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if "upgrading to 0005" in line:
            break
    time.sleep(delay)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate()
    connection = sqlite3.connect(path)
    try:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        count = connection.execute("SELECT count(*) FROM tokens").fetchone()[0]
    finally:
        connection.close()
    said = [line for line in rest.splitlines() if "interrupted" in line]
    return {"seconds": time.monotonic() - sent, "exit": process.returncode, "line": said,
            "revision": revision, "tokens": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds into 0005 before SIGTERM")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="llm-proxy-bench-sigterm-") as directory:
        path = Path(directory) / "llm-proxy.db"
        build(path, args.tokens)
        result = measure(path, args.delay)
    print(f"tokens {args.tokens}: exit {result['exit']} {result['seconds']:.2f}s after SIGTERM; "
          f"at {result['revision']} with {result['tokens']} tokens; {result['line']}")
    return 0 if result["exit"] == 143 and result["revision"] == "0004" else 1


if __name__ == "__main__":
    raise SystemExit(main())
