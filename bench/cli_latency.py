"""Case ``cli``: every command at head, ``--help`` and ``--version``, as whole processes.

Issue 22's target: each of these answers within 0.3 s as a whole process (interpreter start,
imports, the database read, the output) on the project's 2-core machine.  "At head" means the
commands whose work there is nothing or a read; the ones that copy or cycle data by design
(``migrate verify``, ``db backup``, ``db restore``, ``migrate down``, ``--sql``) are not in it.

    python bench/cli_latency.py                          # SQLite (+ PostgreSQL when it answers)
    python bench/cli_latency.py --bin /other/venv/bin/llm-proxy-db --rounds 5
    python bench/cli_latency.py --compare /main/.venv/bin/llm-proxy-db   # before/after, interleaved

``make bench`` and ``make bench-smoke`` run it as the ``cli`` case of ``bench/run.py``.
A command that exits non-zero (``--version`` before it existed) is reported as failed, not
timed.  The table shows the median wall time, the slowest run and the median CPU time the
process used itself (which moves far less than wall time on a loaded machine).  The figures
go in docs/performance.md; no unit test times anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from measure import Run, Samples, run_process, side_by_side

TARGET_S = 0.3
REPO = Path(__file__).resolve().parent.parent
DEFAULT_BIN = Path(sys.executable).parent / "llm-proxy-db"
COMMANDS: dict[str, list[str]] = {
    "--version": ["--version"],
    "--help": ["--help"],
    "migrate --help": ["migrate", "--help"],
    "migrate status --help": ["migrate", "status", "--help"],
    "migrate up --help": ["migrate", "up", "--help"],
    "setup": ["setup"],
    "migrate up": ["migrate", "up"],
    "migrate status": ["migrate", "status"],
    "migrate status --json": ["migrate", "status", "--json"],
    "migrate history": ["migrate", "history"],
    "migrate log": ["migrate", "log"],
    "migrate adopt --dry-run": ["migrate", "adopt", "--dry-run"],
    "migrate rehearse": ["migrate", "rehearse"],
    "migrate manifest": ["migrate", "manifest"],
}


def measure(
    executable: Path, env: Mapping[str, str], rounds: int, warmup: int = 1, *, other: Path | None = None
) -> dict[str, Samples | None]:
    """Each command ``rounds`` times, interleaved; None for a command that fails.  With
    ``other``, the same commands of that script too (keys prefixed ``other: ``), interleaved
    with the first, so a before/after comparison shares the machine's noise."""
    scripts = {"": executable, **({"other: ": other} if other is not None else {})}
    contenders: dict[str, Callable[[], Run]] = {}
    for name, argv in COMMANDS.items():
        for prefix, script in scripts.items():
            if _succeeds(script, argv, env):
                contenders[prefix + name] = lambda argv=argv, script=script: run_process(
                    [str(script), *argv], env, cwd=str(REPO))
    measured = side_by_side(contenders, rounds, warmup)
    return {prefix + name: measured.get(prefix + name) for name in COMMANDS for prefix in scripts}


def summary(samples: dict[str, Samples | None]) -> dict[str, object]:
    """JSON-ready: per command the median and runs (None when it failed), and the target."""
    return {
        "target_s": TARGET_S,
        "commands": {name: (s.as_dict() if s is not None else None) for name, s in samples.items()},
    }


def rows(dialect: str, case: Mapping[str, object]) -> Iterator[tuple[str, float, str, float, float, str]]:
    """Rows for :func:`report.table`: each command's median against the 0.3 s target."""
    commands = case["commands"]
    assert isinstance(commands, dict)
    for name, data in commands.items():
        if data is None:
            continue
        median = float(data["median_s"])
        yield (f"{dialect} cli: llm-proxy-db {name}", median, f"{TARGET_S:g} s", median / TARGET_S, 1.0, "s")


def _succeeds(executable: Path, argv: list[str], env: Mapping[str, str]) -> bool:
    try:
        run_process([str(executable), *argv], env, cwd=str(REPO))
    except RuntimeError:
        return False
    return True


def _table(dialect: str, case: Mapping[str, object]) -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [f"{'command (' + dialect + ', at head)':52} {'median':>9} {'max':>9} {'cpu':>9}  "
             f"target {TARGET_S:g} s (load average {load})"]
    commands = case["commands"]
    assert isinstance(commands, dict)
    for name, data in commands.items():
        if data is None:
            lines.append(f"{'llm-proxy-db ' + name:52} {'failed':>9}")
            continue
        median, worst, cpu = data["median_s"], max(data["runs_s"]), statistics.median(data["cpu_runs_s"])
        verdict = "met" if median <= TARGET_S else "MISSED"
        lines.append(f"{'llm-proxy-db ' + name:52} {median * 1000:>7.0f}ms {worst * 1000:>7.0f}ms "
                     f"{cpu * 1000:>7.0f}ms  {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure on a fresh SQLite database at head (and PostgreSQL with ``--postgres-url``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", type=Path, default=DEFAULT_BIN, help="the llm-proxy-db script to time")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--postgres-url", default=None, help="also time against a scratch database here")
    parser.add_argument("--compare", type=Path, default=None, help="another llm-proxy-db script, timed alongside")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run  # the benchmark's own "databases at head" helper

    with tempfile.TemporaryDirectory(prefix="llm-proxy-cli-") as scratch:
        for settings, env in run._head_databases(Path(scratch), args.postgres_url):
            case = summary(measure(args.bin, env, args.rounds, other=args.compare))
            print(_table(settings.dialect_name, case) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
