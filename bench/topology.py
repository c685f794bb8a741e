"""PostgreSQL beyond one server (issue 19): a streaming replica during the upgrade, and the
pooler race.  Needs ``.ci/topology/postgres.sh start`` (its ``env`` lines name the servers).

``replica``
    goose-1 with the bench size (1M tokens / 2M events at full size) on the topology's primary,
    taken to head by ``setup`` (a child process) while the replica serves the service's token
    lookups, without and with a 1.5 s reporting query looping there, with the throttle on
    (``LLM_PROXY_MAX_REPLICA_LAG``, default 1 s) and, for the reporting-query run, off (``0``)
    to compare.  Measured: the replica's replay lag read on the primary every 0.1 s (max,
    p99; :class:`llm_proxy_db.dialects.postgresql.replication.LagClock` and ``replay_lag``), WAL bytes
    written, pauses shown, replica queries cancelled ("conflict with recovery"), wall time.
``pooler``
    through PgBouncer's transaction pool with ``LLM_PROXY_DIRECT_URL``: two ``setup`` at once
    (rounds: both exit 0, revisions applied once); a fleet of 20 processes at once against a
    single ``setup``'s wall time; and the refusal without the direct URL (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datagen
import upgrade

CHILD = str(Path(__file__).resolve().parent / "child.py")
PRIMARY_ENV = ("LLM_PROXY_BENCH_PG_PRIMARY_URL", "LLM_PROXY_TEST_PG_PRIMARY_URL")
REPLICA_ENV = ("LLM_PROXY_BENCH_PG_REPLICA_URL", "LLM_PROXY_TEST_PG_REPLICA_URL")
TX_ENV = ("LLM_PROXY_BENCH_PGBOUNCER_TX_URL", "LLM_PROXY_TEST_PGBOUNCER_TX_URL")
REPORTING_QUERY = "SELECT pg_sleep(1.5), count(*) FROM audit_events"
LOOKUP = "SELECT token, project_id, expires_at, is_active FROM tokens WHERE token = %s"


def url_from(names: tuple[str, ...]) -> str | None:
    """The first of the environment variables ``names`` that is set."""
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def unavailable() -> str | None:
    """Why the topology cases cannot run, or None."""
    missing = [names[-1] for names in (PRIMARY_ENV, REPLICA_ENV, TX_ENV) if not url_from(names)]
    if missing:
        return f"{', '.join(missing)} not set (.ci/topology/postgres.sh start; eval \"$(... env)\")"
    return None


# -- the replica case ---------------------------------------------------------------------------


@dataclass
class ReplicaRun:
    """One upgrade watched from the primary while the replica serves queries."""

    label: str
    max_lag_setting: str
    lag_samples: list[float] = field(default_factory=list)
    behind_bytes_max: int = 0
    wal_bytes: int = 0
    migration_s: float = 0.0
    pauses: int = 0
    lookups: int = 0
    reports: int = 0
    cancelled: list[str] = field(default_factory=list)  # "kind: first line" of each failed query

    def as_dict(self) -> dict[str, object]:
        """JSON-ready figures."""
        lags = sorted(self.lag_samples) or [0.0]
        return {
            "label": self.label, "LLM_PROXY_MAX_REPLICA_LAG": self.max_lag_setting,
            "max_lag_s": lags[-1], "p99_lag_s": lags[int(0.99 * (len(lags) - 1))],
            "max_behind_mib": self.behind_bytes_max / 2**20, "wal_mib": self.wal_bytes / 2**20,
            "migration_s": self.migration_s, "pauses": self.pauses, "lookups": self.lookups,
            "reporting_queries": self.reports, "cancelled": len(self.cancelled),
            "lookups_cancelled": sum(c.startswith("lookup") for c in self.cancelled),
            "reports_cancelled": sum(c.startswith("report") for c in self.cancelled),
            "cancelled_samples": sorted(set(self.cancelled))[:3],
        }


def replica_case(size: datagen.Size, *, smoke: bool) -> dict[str, object]:
    """The runs of :data:`REPLICA_RUNS` (lookups; + a reporting query; throttle off; replica settings)."""
    primary, replica = url_from(PRIMARY_ENV), url_from(REPLICA_ENV)
    assert primary and replica
    template = upgrade.cached_postgres(primary, size)
    out: dict[str, object] = {"size": size.label()}
    for label, setting, reporting, replica_settings in REPLICA_RUNS:
        with _replica_settings(replica, replica_settings):
            out[label] = _replica_run(primary, replica, template, size, label, setting, reporting,
                                      lookup_rate=50 if smoke else 200).as_dict()
    return out


# (label, LLM_PROXY_MAX_REPLICA_LAG, reporting query?, replica settings for the run)
REPLICA_RUNS: tuple[tuple[str, str, bool, dict[str, str]], ...] = (
    ("lookups only", "1", False, {}),
    ("lookups + 1.5 s report", "1", True, {}),
    ("lookups + 1.5 s report, throttle off", "0", True, {}),
    ("+ report, hot_standby_feedback=on", "1", True, {"hot_standby_feedback": "on"}),
    ("+ report, max_standby_streaming_delay=5s", "1", True, {"max_standby_streaming_delay": "5s"}),
)


@contextmanager
def _replica_settings(replica: str, settings: dict[str, str]) -> Iterator[None]:
    """The topology's own replica reconfigured for one run (ALTER SYSTEM there, reset after)."""
    import psycopg

    def apply(values: dict[str, str | None]) -> None:
        with psycopg.connect(replica, autocommit=True) as connection:
            for name, value in values.items():
                connection.execute(f"ALTER SYSTEM {'RESET ' + name if value is None else f'SET {name} = {value!r}'}")
            connection.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)

    if settings:
        apply(dict(settings))
    try:
        yield
    finally:
        if settings:
            apply(dict.fromkeys(settings))


def _replica_run(
    primary: str, replica: str, template: str, size: datagen.Size, label: str, setting: str,
    reporting: bool, lookup_rate: float,
) -> ReplicaRun:
    import psycopg

    run = ReplicaRun(label, setting)
    with upgrade._clone(primary, template) as url:
        name = url.rsplit("/", 1)[1].split("?")[0]
        replica_url = upgrade._with_database(replica, name)
        _wait_replayed(primary, replica_url)
        stop = threading.Event()
        threads = [threading.Thread(target=_lookups, args=(replica_url, size, lookup_rate, stop, run))]
        if reporting:
            threads.append(threading.Thread(target=_reports, args=(replica_url, stop, run)))
        watcher = threading.Thread(target=_watch_lag, args=(url, stop, run))
        with psycopg.connect(url, autocommit=True) as connection:
            wal_before = int(connection.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])  # type: ignore[index]
        for thread in (*threads, watcher):
            thread.start()
        env = {**os.environ, "DB_DRIVER": "postgres", "DATABASE_URL": url, "LLM_PROXY_MAX_REPLICA_LAG": setting}
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-m", "llm_proxy_db", "setup"], env=env,
                               capture_output=True, text=True)
        run.migration_s = time.perf_counter() - started
        stop.set()
        for thread in (*threads, watcher):
            thread.join()
        if child.returncode != 0:
            raise RuntimeError(f"setup failed: {child.stderr[-2000:]}")
        run.pauses = child.stderr.count("paused: replica lag")
        with psycopg.connect(url, autocommit=True) as connection:
            wal_after = int(connection.execute("SELECT pg_current_wal_lsn() - '0/0'").fetchone()[0])  # type: ignore[index]
        run.wal_bytes = wal_after - wal_before
        _wait_replayed(primary, replica_url)
    return run


def _wait_replayed(primary: str, replica: str, timeout: float = 600.0) -> None:
    import psycopg

    with psycopg.connect(primary, autocommit=True) as connection:
        target = str(connection.execute("SELECT pg_current_wal_lsn()").fetchone()[0])  # type: ignore[index]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(replica, autocommit=True) as connection:
                if connection.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:  # type: ignore[index]
                    return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the replica did not catch up")


def _watch_lag(url: str, stop: threading.Event, run: ReplicaRun) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from llm_proxy_db.dialects.postgresql.replication import LagClock

    clock = LagClock()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool,
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        while not stop.is_set():
            worst = clock.read(connection).worst
            if worst is not None:
                run.lag_samples.append(worst.seconds)
                run.behind_bytes_max = max(run.behind_bytes_max, worst.behind_bytes)
            time.sleep(0.1)
    engine.dispose()


def _lookups(url: str, size: datagen.Size, rate: float, stop: threading.Event, run: ReplicaRun) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        if _query(url, LOOKUP, (f"tok_{1 + n * 7919 % size.tokens:028d}",), "lookup", run):
            run.lookups += 1
        time.sleep(1.0 / rate)


def _reports(url: str, stop: threading.Event, run: ReplicaRun) -> None:
    while not stop.is_set():
        if _query(url, REPORTING_QUERY, (), "report", run):
            run.reports += 1


_sessions: dict[tuple[str, str], Any] = {}


def _query(url: str, sql: str, params: tuple[object, ...], kind: str, run: ReplicaRun) -> bool:
    """One query on the thread's session (opened again after a failure); False when it failed."""
    import psycopg

    key = (url, kind)
    try:
        if key not in _sessions:
            _sessions[key] = psycopg.connect(url, autocommit=True)
        _sessions[key].execute(sql, params).fetchall()
        return True
    except psycopg.Error as exc:
        run.cancelled.append(f"{kind}: {str(exc).splitlines()[0]}")
        session = _sessions.pop(key, None)
        if session is not None:
            session.close()
        time.sleep(0.05)
        return False


def replica_table(result: dict[str, Any]) -> str:
    """The replica case's figures, one line per run."""
    lines = [f"replica lag during setup ({result['size']}) {'max lag':>14} {'p99':>6} {'max behind':>11} "
             f"{'WAL':>9} {'pauses':>6} {'cancelled lookups/reports':>9} {'wall':>7}", "-" * 126]
    for label, r in result.items():
        if label == "size":
            continue
        lines.append(
            f"{label:40} {r['max_lag_s']:>13.2f}s {r['p99_lag_s']:>5.2f}s {r['max_behind_mib']:>8.1f}MiB "
            f"{r['wal_mib']:>6.0f}MiB {r['pauses']:>6} {r['lookups_cancelled']:>4}/{r['reports_cancelled']:<4} "
            f"{r['migration_s']:>6.1f}s"
        )
    return "\n".join(lines)


# -- the pooler race ----------------------------------------------------------------------------


def pooler_case(admin_url: str, size: datagen.Size, *, rounds: int, fleet: int = 20) -> dict[str, object]:
    """Two setups at once (``rounds``), a fleet at once, a single setup; via the transaction pool."""
    tx = url_from(TX_ENV)
    assert tx
    template = upgrade.cached_postgres(admin_url, size)
    out: dict[str, Any] = {"size": size.label(), "rounds": rounds, "pair_ok": 0, "applied_twice": 0}
    for _ in range(rounds):
        with _pooled_clone(admin_url, template, tx) as (direct, pooled):
            codes = [code for code, _ in _at_once(2, direct, pooled)]
            out["pair_ok"] += codes == [0, 0]
            out["applied_twice"] += _applied_twice(direct)
    with _pooled_clone(admin_url, template, tx) as (direct, pooled):
        out["refused_without_direct_url"] = _at_once(1, None, pooled)[0][0]
    with _pooled_clone(admin_url, template, tx) as (direct, pooled):
        started = time.perf_counter()
        (code, _), = _at_once(1, direct, pooled)
        out["single_setup_s"] = time.perf_counter() - started
    with _pooled_clone(admin_url, template, tx) as (direct, pooled):
        floor = _import_floor(fleet)
        started = time.perf_counter()
        codes = [code for code, _ in _at_once(fleet, direct, pooled)]
        out["fleet"] = {"processes": fleet, "all_exit_0": codes == [0] * fleet,
                        "wall_s": time.perf_counter() - started, "applied_twice": _applied_twice(direct),
                        "import_floor_s": floor}
    out["load_average"] = os.getloadavg()[0]
    return out


# What every process of a rollout pays before it touches the database: the full CLI's imports.
_IMPORTS = "import llm_proxy_db.cli.app, llm_proxy_db.commands, alembic.command, psycopg"


def _import_floor(count: int) -> float:
    """Seconds for ``count`` processes that only import the full CLI, started at once: on a
    machine with fewer cores than processes, the floor of any rollout's wall time."""
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-c", _IMPORTS]) for _ in range(count)]
    for process in processes:
        process.wait()
    return time.perf_counter() - started


@contextmanager
def _pooled_clone(admin_url: str, template: str, tx: str) -> Iterator[tuple[str, str]]:
    with upgrade._clone(admin_url, template) as direct:
        yield direct, upgrade._with_database(tx, direct.rsplit("/", 1)[1].split("?")[0])


def _at_once(count: int, direct: str | None, pooled: str) -> list[tuple[int, str]]:
    env = {k: v for k, v in os.environ.items() if k != "LLM_PROXY_DIRECT_URL"}
    env.update(DB_DRIVER="postgres", DATABASE_URL=pooled)
    if direct:
        env["LLM_PROXY_DIRECT_URL"] = direct
    processes = [subprocess.Popen([sys.executable, "-m", "llm_proxy_db", "setup"], env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(count)]
    results = []
    for process in processes:
        _out, err = process.communicate()
        results.append((process.returncode, err))
    return results


def _applied_twice(direct: str) -> int:
    import psycopg

    with psycopg.connect(direct, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM (SELECT revision FROM llm_proxy_run_log WHERE action = 'upgrade' "
            "AND outcome = 'success' GROUP BY revision HAVING count(*) > 1) twice"
        ).fetchone()
    return int(row[0]) if row else 0


def pooler_table(result: dict[str, Any]) -> str:
    """The pooler race's figures."""
    fleet = result["fleet"]
    return "\n".join([
        f"pooler race (PgBouncer transaction pool + LLM_PROXY_DIRECT_URL, {result['size']})",
        "-" * 80,
        f"two setups at once: {result['pair_ok']}/{result['rounds']} rounds both exit 0, "
        f"{result['applied_twice']} revision(s) applied twice",
        f"without the direct URL: exit {result['refused_without_direct_url']}",
        f"single setup {result['single_setup_s']:.1f}s; fleet of {fleet['processes']} at once "
        f"{fleet['wall_s']:.1f}s (all exit 0: {fleet['all_exit_0']}, applied twice: "
        f"{fleet['applied_twice']}); {fleet['processes']} processes only importing the CLI at once "
        f"{fleet['import_floor_s']:.1f}s; load average {result['load_average']:.1f}",
        f"fleet - max(single setup, import floor) = "
        f"{fleet['wall_s'] - max(result['single_setup_s'], fleet['import_floor_s']):.1f}s",
    ])


def dump(result: dict[str, Any]) -> str:
    """JSON for the results file."""
    return json.dumps(result, indent=2)
