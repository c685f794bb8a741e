"""``make bench``: build databases, measure, print a table of medians and ratios, save JSON.

    python bench/run.py                 # full size (1M tokens, 2M audit events), ~15 min on 2 cores
    python bench/run.py --smoke         # tiny sizes, a few seconds (CI runs this)
    python bench/run.py --cases startup # one case
    python bench/run.py --cases cli     # every command at head and --help, whole processes (0.3 s)

Every ratio compares two things measured side by side, interleaved, in the same run.
PostgreSQL cases run when ``--postgres-url`` (or LLM_PROXY_BENCH_POSTGRES_URL, or
LLM_PROXY_TEST_POSTGRES_URL) names a server the benchmark may create databases on; without
any of them, the documented local server (``postgresql://postgres@127.0.0.1:5432/test``) is
used when it answers, and the run says loudly when PostgreSQL is not measured.
The ``live`` case (PostgreSQL only) migrates under the service's traffic: see ``live.py``.
The ``replica`` and ``pooler`` cases (a streaming replica during the upgrade; PgBouncer's
transaction pool with a direct URL: two setups at once, a fleet of 20) need the servers of
``.ci/topology/postgres.sh start`` (``eval "$(.ci/topology/postgres.sh env)"``): see ``topology.py``.
The ``mariadb`` case (goose-1 MySQL shape to head against the ``mariadb`` client floor, with
the service's token writes timed throughout; see ``mariadb.py``) runs when ``--mysql-url``
(or LLM_PROXY_BENCH_MYSQL_URL, or LLM_PROXY_TEST_MYSQL_URL) names a server that answers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backup_speed  # noqa: E402
import cli_latency  # noqa: E402
import datagen  # noqa: E402
import live  # noqa: E402
import mariadb  # noqa: E402
import mysql_topology  # noqa: E402
import report  # noqa: E402
import startup  # noqa: E402
import topology  # noqa: E402
import upgrade  # noqa: E402

from llm_proxy_db import commands  # noqa: E402
from llm_proxy_db.config.settings import Settings  # noqa: E402
from llm_proxy_db.dialects import postgresql

HERE = Path(__file__).resolve().parent
CASES = ("startup", "cli", "upgrade", "growth", "backup", "live", "mariadb", "replica", "pooler", "galera",
         "mysql-replica")
LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and few rounds")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--postgres-url", default=_default_postgres_url())
    parser.add_argument("--mysql-url", default=_default_mysql_url(),
                        help="a MySQL/MariaDB server the benchmark may create databases on")
    parser.add_argument("--mariadb-sizes", default="1",
                        help="mariadb case: sizes as fractions of the full size (e.g. 0.1,1)")
    parser.add_argument("--topology-sizes", default="1",
                        help="galera and mysql-replica cases: sizes as fractions of the full size (e.g. 0.01,1)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="JSON results directory")
    parser.add_argument("--cache", type=Path, default=HERE / "results" / "cache",
                        help="generated legacy SQLite files, reused between runs")
    parser.add_argument("--live-sizes", default="0.1,1",
                        help="live case: token counts as fractions of the full size (default 100k and 1M)")
    parser.add_argument("--rounds", type=int,
                        help="rounds for the upgrade cases (default: 3 at full size, 5 at 10%%, 1 smoke)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases; print the table; write ``bench-<time>.json``."""
    args = parse_args(argv)
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    size = datagen.Size(20, 2_000, 4_000) if args.smoke else datagen.FULL
    rounds = args.rounds or (1 if args.smoke else 3)
    growth_rounds = args.rounds or (1 if args.smoke else 5)
    results: dict[str, object] = {"machine": report.machine(), "smoke": args.smoke,
                                  "size": vars(size), "rounds": rounds}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llm-proxy-bench-") as scratch:
        work = Path(scratch)
        if "startup" in cases:
            results["startup"] = run_startup(work, args, smoke=args.smoke)
        if "cli" in cases:
            results["cli"] = run_cli(work / "cli", args, smoke=args.smoke)
        if "upgrade" in cases:
            results["upgrade"] = run_upgrade(work, args, size, rounds)
        if "growth" in cases:
            results["growth"] = run_upgrade(work, args, size.scaled(0.1), growth_rounds)
        if "backup" in cases:
            results["backup"] = run_backup(args, size, rounds)
        if "live" in cases and args.postgres_url:
            results["live"] = run_live(args, size)
        skipped = None
        if "mariadb" in cases:
            skipped = mariadb.unavailable(args.mysql_url) if args.mysql_url else "no server named"
        if "mariadb" in cases and not skipped:
            results["mariadb"] = run_mariadb(args, size, rounds)
        no_topology = topology.unavailable() or (None if args.postgres_url else "no PostgreSQL server")
        if "replica" in cases and not no_topology:
            results["replica"] = topology.replica_case(size, smoke=args.smoke)
        if "pooler" in cases and not no_topology:
            results["pooler"] = topology.pooler_case(args.postgres_url, size, rounds=2 if args.smoke else 10)
        topology_skipped = run_topology(args, cases, size, rounds, results)
    results["wall_s"] = time.perf_counter() - started
    results["targets"] = report.targets(results)
    for label, summary in results.get("live", {}).items():  # type: ignore[union-attr]
        results["targets"] += live.targets(summary, label)  # type: ignore[operator]
    print(report.table(results))
    if results.get("live"):
        print("\n" + live_table(results["live"]))  # type: ignore[arg-type]
    for result in results.get("mariadb", {}).values():  # type: ignore[union-attr]
        print("\n" + mariadb.table(result))
    if results.get("replica"):
        print("\n" + topology.replica_table(results["replica"]))  # type: ignore[arg-type]
    if results.get("pooler"):
        print("\n" + topology.pooler_table(results["pooler"]))  # type: ignore[arg-type]
    if ("replica" in cases or "pooler" in cases) and no_topology:
        print(f"\n!!! PostgreSQL TOPOLOGY NOT MEASURED (replica, pooler): {no_topology}")
    if "mariadb" in cases and skipped:
        print(f"\n!!! MariaDB NOT MEASURED: {skipped} (--mysql-url, LLM_PROXY_BENCH_MYSQL_URL "
              "or LLM_PROXY_TEST_MYSQL_URL)")
    for case, table in (("galera", mysql_topology.galera_table), ("mysql-replica", mysql_topology.replica_table)):
        for result in results.get(case, {}).values():  # type: ignore[union-attr]
            print("\n" + table(result))
    for case, why in topology_skipped.items():
        print(f"\n!!! {case} NOT MEASURED: {why}")
    if not args.postgres_url:
        print("\n!!! PostgreSQL NOT MEASURED: no server at --postgres-url, "
              f"LLM_PROXY_BENCH_POSTGRES_URL, LLM_PROXY_TEST_POSTGRES_URL or {LOCAL_POSTGRES}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%dT%H%M%S')}{'-smoke' if args.smoke else ''}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {path}")
    return 0


def run_startup(work: Path, args: argparse.Namespace, *, smoke: bool) -> dict[str, object]:
    """Case 1 on SQLite and (when available) PostgreSQL."""
    rounds, calls, warmup = (1, 20, 0) if smoke else (15, 300, 1)
    out: dict[str, object] = {}
    for settings, env in _head_databases(work, args.postgres_url):
        whole = startup.whole_process(settings, env, rounds, warmup)
        name, per_call = startup.in_process(settings, calls)
        out[settings.dialect_name] = {
            "whole_process": {key: value.as_dict() for key, value in whole.items()},
            "in_process_function": name,
            "in_process": {key: value.as_dict() for key, value in per_call.items()},
        }
    return out


def run_cli(work: Path, args: argparse.Namespace, *, smoke: bool) -> dict[str, object]:
    """Every command at head, ``--help`` and ``--version`` as whole processes (issue 22: 0.3 s each)."""
    rounds, warmup = (1, 0) if smoke else (10, 1)
    work.mkdir(parents=True, exist_ok=True)
    return {
        settings.dialect_name: cli_latency.summary(cli_latency.measure(cli_latency.DEFAULT_BIN, env, rounds, warmup))
        for settings, env in _head_databases(work, args.postgres_url)
    }


def run_upgrade(work: Path, args: argparse.Namespace, size: datagen.Size, rounds: int) -> dict[str, object]:
    """Cases 2/3: SQLite L1 and L0 to head, PostgreSQL goose-1 to head, against the floor."""
    sqlite = upgrade.sqlite_upgrades(args.cache, work / "legacy.db", size, rounds=rounds)
    l1, l0 = sqlite["L1"], sqlite["L0"]
    out: dict[str, object] = {"label": size.label(), "size": vars(size),
                              "sqlite_L1": l1.as_dict(), "sqlite_L0": l0.as_dict(),
                              "adoption": "setup adopts" if not upgrade.adoption_env() else "stamp 0002/0001 + setup"}
    if args.postgres_url:
        out["postgresql_goose1"] = upgrade.postgres_upgrade(args.postgres_url, size, rounds=rounds).as_dict()
    return out


def run_backup(args: argparse.Namespace, size: datagen.Size, rounds: int) -> dict[str, object]:
    """SQLite backup of the L1 file: ``cp`` of the quiescent file, VACUUM INTO, the backup API,
    ``llm-proxy backup`` (alone and under a writer), interleaved; medians in seconds."""
    import statistics

    source = upgrade.cached_sqlite(args.cache, size, audit_log=True)
    times = backup_speed.measure(source, rounds)
    return {"label": size.label(), "size_mib": source.stat().st_size / 2**20,
            "median_s": {name: statistics.median(samples) for name, samples in times.items()},
            "samples_s": times}


def run_live(args: argparse.Namespace, size: datagen.Size) -> dict[str, object]:
    """The live-traffic case at each chosen size; a PNG per size next to the JSON."""
    out: dict[str, object] = {}
    fractions = [1.0] if args.smoke else [float(f) for f in args.live_sizes.split(",") if f.strip()]
    for fraction in fractions:
        scaled = size if fraction == 1 else size.scaled(fraction)
        label = scaled.label()
        if args.smoke:
            result = live.live_upgrade(args.postgres_url, scaled, rate=100, connections=2,
                                       baseline_s=1.0, after_s=0.5)
        else:
            result = live.live_upgrade(args.postgres_url, scaled)
        summary = result.as_dict()
        args.out.mkdir(parents=True, exist_ok=True)
        png = live.plot(result, args.out / f"live-{label.replace('/', '-')}.png",
                        f"goose-1 PostgreSQL, {label} projects/tokens/events, to head under load")
        summary["png"] = str(png) if png else None
        out[label] = summary
    return out


def run_mariadb(args: argparse.Namespace, size: datagen.Size, rounds: int) -> dict[str, object]:
    """The MariaDB case at each chosen size (smoke: one tiny size, one round, a slow probe)."""
    if args.smoke:
        return {size.label(): mariadb.mariadb_upgrade(args.mysql_url, size, rounds=1, connections=2, rate=10)}
    out: dict[str, object] = {}
    for fraction in (float(f) for f in args.mariadb_sizes.split(",") if f.strip()):
        scaled = size if fraction == 1 else size.scaled(fraction)
        out[scaled.label()] = mariadb.mariadb_upgrade(args.mysql_url, scaled, rounds=rounds)
    return out


def run_topology(args: argparse.Namespace, cases: list[str], size: datagen.Size, rounds: int,
                 results: dict[str, object]) -> dict[str, str]:
    """The galera and mysql-replica cases (servers of .ci/topology/mariadb.sh); why each was skipped."""
    galera_urls, primary, replica = mysql_topology.topology_urls()
    wanted = {"galera": galera_urls, "mysql-replica": [u for u in (primary, replica) if u]}
    fractions = [1.0] if args.smoke else [float(f) for f in args.topology_sizes.split(",") if f.strip()]
    skipped: dict[str, str] = {}
    for case in ("galera", "mysql-replica"):
        if case not in cases:
            continue
        why = mysql_topology.unavailable(wanted[case] if len(wanted[case]) >= 2 else [])
        if why:
            skipped[case] = why
            continue
        out: dict[str, object] = {}
        for fraction in fractions:
            scaled = size if fraction == 1 else size.scaled(fraction)
            kwargs = {"rounds": rounds, "rate": 10.0 if args.smoke else 20.0}
            if case == "galera":
                out[scaled.label()] = mysql_topology.galera_setup(galera_urls, scaled, **kwargs)  # type: ignore[arg-type]
            else:
                out[scaled.label()] = mysql_topology.replica_setup(primary, replica, scaled, **kwargs)  # type: ignore[arg-type]
        results[case] = out
    return skipped


def live_table(results: dict[str, Any]) -> str:
    """The live-traffic figures: failures, latency before/during, stalls, locks, wall time."""
    lines = [f"{'live traffic (PostgreSQL)':28} {'failed':>6} {'p50 base/during':>16} "
             f"{'p99 base/during':>16} {'max during':>10} {'stalls':>6} {'longest AEL':>22} {'migration':>9}"]
    lines.append("-" * 122)
    for label, r in results.items():
        base, during = r["baseline"], r["during"]
        locks = r["longest_exclusive_s"]
        table, longest = max(locks.items(), key=lambda item: item[1], default=("-", 0.0))
        lines.append(
            f"{label:28} {r['failed']:>6} {base['p50_ms']:>7.1f}/{during['p50_ms']:<7.1f}ms "
            f"{base['p99_ms']:>7.1f}/{during['p99_ms']:<7.1f}ms {during['max_ms']:>8.0f}ms "
            f"{r['stalls_over_250ms']:>6} {table + f' {longest * 1000:.0f}ms':>22} {r['migration_s']:>8.1f}s"
        )
    return "\n".join(lines)


def _head_databases(work: Path, postgres_url: str | None):  # type: ignore[no-untyped-def]
    """Up-to-date databases for case 1, with the environment a child process needs."""
    sqlite = Settings(driver="sqlite", database_path=work / "head.db")
    commands.upgrade(sqlite)
    yield sqlite, {**os.environ, "DB_DRIVER": "sqlite", "DATABASE_PATH": str(sqlite.database_path)}
    if not postgres_url:
        return
    with upgrade._clone(postgres_url, "template1") as url:
        settings = Settings(driver="postgres", database_url=postgresql.parse_database_url(url))
        commands.upgrade(settings)
        yield settings, {**os.environ, "DB_DRIVER": "postgres", "DATABASE_URL": url}


def _default_postgres_url() -> str | None:
    url = os.environ.get("LLM_PROXY_BENCH_POSTGRES_URL") or os.environ.get("LLM_PROXY_TEST_POSTGRES_URL")
    if url:
        return url
    return LOCAL_POSTGRES if _answers(LOCAL_POSTGRES) else None


def _default_mysql_url() -> str | None:
    """The MySQL/MariaDB server named by the environment (the case checks that it answers)."""
    return os.environ.get("LLM_PROXY_BENCH_MYSQL_URL") or os.environ.get("LLM_PROXY_TEST_MYSQL_URL") or None


def _answers(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
