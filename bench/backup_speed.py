"""SQLite backup speed: ``cp`` of a quiescent copy vs ``VACUUM INTO`` vs the online backup API.

    python bench/backup_speed.py                  # medium: 10k projects, 100k tokens, 200k events
    python bench/backup_speed.py --scale 1        # full: 1M tokens, 2M events (the 1.2 GB file)
    python bench/backup_speed.py --scale 0.001    # smoke

All methods run interleaved, round by round, on the same cached L1 file (WAL mode, as the
service writes it), so noise hits them alike; the table shows medians and the ratio to
``cp``.  ``llm-proxy backup`` is the tool's whole backup (online backup API in one step +
origin record + ``PRAGMA quick_check`` + rename); it is also timed while a writer commits
a row every millisecond, to show that the one-step copy does not restart on writes.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datagen  # noqa: E402
import upgrade  # noqa: E402

from llm_proxy_db.dialects.sqlite.backup import copy_database  # noqa: E402

WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
n = 0
while True:
    conn.execute("UPDATE projects SET updated_at = CURRENT_TIMESTAMP WHERE rowid = ?", (n % 100 + 1,))
    n += 1
    time.sleep(0.001)
"""


def timed(action: Callable[[], float | None]) -> float:
    """Seconds ``action`` took, or the seconds it reports itself (set-up excluded)."""
    started = time.perf_counter()
    own = action()
    return own if own is not None else time.perf_counter() - started


def methods(source: Path) -> dict[str, Callable[[Path], float | None]]:
    """Each method copies ``source`` to the given target."""

    def cp(target: Path) -> None:
        subprocess.run(["cp", str(source), str(target)], check=True)

    def vacuum_into(target: Path) -> None:
        connection = sqlite3.connect(source, isolation_level=None)
        connection.execute("VACUUM INTO ?", (str(target),))
        connection.close()

    def online_backup(target: Path) -> None:
        reader = sqlite3.connect(source)
        writer = sqlite3.connect(target)
        reader.backup(writer, pages=-1)
        writer.close()
        reader.close()

    def tool(target: Path) -> None:
        copy_database(source, target, revision="0002")

    def tool_with_writer(target: Path) -> float:
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source)])
        try:
            time.sleep(0.3)  # the writer is committing
            return timed(lambda: copy_database(source, target, revision="0002"))
        finally:
            writer.kill()
            writer.wait()

    return {
        "cp (quiescent)": cp,
        "VACUUM INTO": vacuum_into,
        "backup API, one step": online_backup,
        "llm-proxy backup": tool,
        "llm-proxy backup + writer": tool_with_writer,
    }


def measure(source: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds per method and round, the methods interleaved round by round."""
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="llm-proxy-backup-bench-") as scratch:
        for _ in range(rounds):
            for name, method in methods(source).items():
                target = Path(scratch) / "copy.db"
                os.sync()  # each method starts with no dirty pages left by the one before
                times.setdefault(name, []).append(timed(lambda m=method, t=target: m(t)))
                for suffix in ("", "-journal", "-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1, help="fraction of the full size (default 0.1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "llm-proxy-bench-cache")
    args = parser.parse_args(argv)
    size = datagen.FULL.scaled(args.scale)
    source = upgrade.cached_sqlite(args.cache, size, audit_log=True)
    times = measure(source, args.rounds)
    size_mib = source.stat().st_size / 2**20
    baseline = statistics.median(times["cp (quiescent)"])
    print(f"SQLite backup of {size.label()} ({size_mib:.0f} MiB), median of {args.rounds} rounds")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:<28} {median:8.3f} s   {median / baseline:5.2f}x cp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
