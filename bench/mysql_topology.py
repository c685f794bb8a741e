"""The MySQL topology cases: ``setup`` from goose-1 on a three-node Galera cluster, and on a
MariaDB primary with an asynchronous replica (``.ci/topology/mariadb.sh`` starts both).

- ``galera``: each round clones the goose-1 template (built through node 1, replicated) and runs
  ``llm-proxy setup`` in a child process through node 1 while :class:`WriterProbe` runs the
  service's token statements (lookups, request-counter UPDATEs, inserts, audit inserts) on
  **every** node.  Measured: setup's time and exit code, the longest write per node, the
  service's failed writes (their own certification conflicts), our fill batches retried after
  a certification conflict and the time paused for flow control (from setup's progress).
- ``mysql-replica``: the same on the primary with the probe on the primary, while a thread reads the
  replica's lag every 0.1 s (the GTID clock of ``llm_proxy_db.dialects.mysql.pacing``:
  ``@@gtid_binlog_pos`` sampled on the primary, ``@@gtid_slave_pos`` on the replica, and
  ``Seconds_Behind_Master``), once with ``LLM_PROXY_MAX_REPLICA_LAG`` at its default (1 s) and
  once with it off (0): the highest lag seen and the pauses setup showed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import datagen
import mariadb_data
from measure import run_process
from writer_probe import WriterProbe

from llm_proxy_db.dialects.mysql.topology import parse_gtid_position, reached

CHILD = str(Path(__file__).resolve().parent / "child.py")
SETTLE_S = 0.5


def topology_urls(env: dict[str, str] | None = None) -> tuple[list[str], str | None, str | None]:
    """Galera node URLs, primary URL, replica URL from the environment (``.ci/topology/mariadb.sh env``)."""
    env = dict(os.environ if env is None else env)
    galera = [u for u in env.get("LLM_PROXY_TEST_GALERA_URLS", "").split(",") if u.strip()]
    primary = env.get("LLM_PROXY_TEST_MYSQL_PRIMARY_URL") or None
    return galera, primary, env.get("LLM_PROXY_TEST_MYSQL_REPLICA_URL") or None


def unavailable(urls: list[str]) -> str | None:
    """Why a case cannot run on ``urls`` (not set, a server not answering), or None."""
    if not urls:
        return "not started (.ci/topology/mariadb.sh start; eval \"$(.ci/topology/mariadb.sh env)\")"
    for url in urls:
        try:
            mariadb_data.Server.from_url(url).connect().close()
        except Exception as exc:  # noqa: BLE001 - any failure is the reason
            return f"no server at {url.split('@')[-1]}: {exc.__class__.__name__}"
    return None


@dataclass
class SetupRun:
    """One ``setup`` child: wall seconds, exit code (0, or 1 with the error's tail)."""

    seconds: float
    returncode: int
    error: str = ""


def _setup(server: mariadb_data.Server, database: str, extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """``setup`` in a child process; (run, progress events).  A failed setup is recorded, not raised."""
    events = Path(f"/tmp/llmproxy-bench-events-{database}.jsonl")
    env = {**os.environ, "DB_DRIVER": "mysql", "DATABASE_URL": server.url(database), "BENCH_EVENTS": str(events),
           **(extra_env or {})}
    env.pop("DATABASE_PATH", None)
    started = time.perf_counter()
    try:
        run = SetupRun(run_process([sys.executable, CHILD, "setup"], env).seconds, 0)
    except RuntimeError as exc:
        run = SetupRun(time.perf_counter() - started, 1, str(exc)[-500:])
    marks = [json.loads(line) for line in events.read_text().splitlines() if line.strip()] if events.exists() else []
    events.unlink(missing_ok=True)
    return run, marks


def _during(started: float, marks: list[dict[str, object]]) -> str:
    """The last progress event of setup before ``started`` (the step a slow write waited in)."""
    before = [m for m in marks if float(m["t"]) <= started]  # type: ignore[arg-type]
    if not before:
        return "before setup's first event"
    last = before[-1]
    return f"{last['revision']} {last['kind']}: {str(last['detail'])[:80]} (+{started - float(last['t']):.1f} s)"  # type: ignore[arg-type]


def _throttle(marks: list[dict[str, object]]) -> dict[str, object]:
    details = [str(m["detail"]) for m in marks if m["kind"] == "throttle"]
    resumed = [float(d.split()[2]) for d in details if d.startswith("resumed after")]
    return {
        "conflict_retries": sum("certification conflict" in d for d in details),
        "pauses": len(resumed),
        "paused_s": round(sum(resumed), 2),
        "pause_reasons": sorted({d.split(" (")[0] for d in details if d.startswith("paused:")})[:5],
    }


def galera_setup(urls: list[str], size: datagen.Size, *, rounds: int, connections: int = 2,
                 rate: float = 20.0) -> dict[str, object]:
    """``rounds`` setups through node 1 with the service's writes on every node."""
    nodes = [mariadb_data.Server.from_url(url) for url in urls]
    started = time.perf_counter()
    template = mariadb_data.ensure_template(nodes[0], size)
    build_s = time.perf_counter() - started
    out: list[dict[str, object]] = []
    for _ in range(rounds):
        database = f"llmproxy_bench_galera_{uuid.uuid4().hex[:10]}"
        mariadb_data.clone(nodes[0], template, database)
        _wait_galera(nodes, database)
        probes = [WriterProbe(node, database, size.tokens, size.projects, connections, rate) for node in nodes]
        try:
            for probe in probes:
                probe.__enter__()
            time.sleep(SETTLE_S)
            since = time.perf_counter()
            run, marks = _setup(nodes[0], database)
            until = time.perf_counter()
            time.sleep(SETTLE_S)
        finally:
            for probe in probes:
                probe.__exit__(None, None, None)
            mariadb_data.drop(nodes[0], database)
        per_node = [probe.summary(since, until) for probe in probes]
        for summary in per_node:  # which step of setup each write over 1 s waited in
            summary["slow_during"] = [_during(started, marks) for kind in ("write", "audit")
                                      for started in summary[kind]["slow_started"]]  # type: ignore[index]
        out.append({"seconds": run.seconds, "exit_code": run.returncode, "error": run.error, "per_node": per_node,
                    **_throttle(marks)})
        longest = ", ".join(f"{p['write']['max_s'] * 1000:.0f}" for p in per_node)  # type: ignore[index]
        print(f"galera {size.label()}: setup {run.seconds:.1f} s exit {run.returncode}, longest write per node "
              f"{longest} ms", file=sys.stderr, flush=True)
        for number, summary in enumerate(per_node, 1):
            for during in summary["slow_during"]:  # type: ignore[attr-defined]
                print(f"  node {number}: a write over 1 s after {during}", file=sys.stderr, flush=True)
    return {"label": size.label(), "size": vars(size), "template_build_s": build_s, "rounds": out,
            "probe": {"connections_per_node": connections, "cycles_per_s": rate}}


def _wait_galera(nodes: list[mariadb_data.Server], database: str, timeout: float = 1800.0) -> None:
    """Until every node has applied what node 1 committed (the clone's write sets and its TOI
    index builds) and no receive queue is left: the probe times setup, not the clone's tail."""
    target = int(nodes[0].run("SHOW GLOBAL STATUS LIKE 'wsrep_last_committed';").split()[-1])
    deadline = time.monotonic() + timeout
    for node in nodes:
        while True:
            status = dict(line.split("\t") for line in node.run(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_last_committed', 'wsrep_local_recv_queue');"
            ).splitlines())
            if int(status["wsrep_last_committed"]) >= target and int(status["wsrep_local_recv_queue"]) == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.port} did not apply the clone of {database} in {timeout:.0f} s")
            time.sleep(0.2)


class LagWatch:
    """Reads a replica's lag every ``every`` seconds in a thread (the GTID clock, and
    Seconds_Behind_Master); ``highest`` is the largest seen."""

    def __init__(self, primary: mariadb_data.Server, replica: mariadb_data.Server, every: float = 0.1) -> None:
        self.primary, self.replica, self.every = primary, replica, every
        self.highest = 0.0
        self.highest_during = ""  # what the replica's SQL thread was running at the highest lag
        self.series: list[tuple[float, float]] = []  # (perf_counter, lag): setup's events share the clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LagWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        primary, replica = self.primary.connect(), self.replica.connect()
        samples: deque[tuple[float, dict[tuple[int, int], int]]] = deque(maxlen=100_000)
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                with primary.cursor() as cursor:
                    cursor.execute("SELECT @@gtid_binlog_pos")
                    samples.append((now, parse_gtid_position(str(cursor.fetchone()[0]))))
                with replica.cursor() as cursor:
                    cursor.execute("SELECT @@gtid_slave_pos")
                    applied = parse_gtid_position(str(cursor.fetchone()[0]))
                    cursor.execute("SHOW SLAVE STATUS")
                    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone() or (), strict=False))
                behind = row.get("Seconds_Behind_Master")
                clock = next((now - seen for seen, position in samples if not reached(applied, position)), 0.0)
                lag = max(clock, float(behind or 0))
                self.series.append((now, lag))
                if lag > self.highest:
                    self.highest, self.highest_during = lag, _applying(replica)
                self._stop.wait(self.every)
        finally:
            primary.close()
            replica.close()


def _applying(replica) -> str:  # type: ignore[no-untyped-def]
    """The statement (or state) of the replica's SQL thread, for the report of the highest lag."""
    with replica.cursor() as cursor:
        cursor.execute("SELECT state, LEFT(info, 120) FROM information_schema.processlist "
                       "WHERE user = 'system user' AND (info IS NOT NULL OR state NOT LIKE 'Waiting%') LIMIT 1")
        row = cursor.fetchone()
    return " ".join(str(part) for part in row if part) if row else "idle"


def replica_setup(primary_url: str, replica_url: str, size: datagen.Size, *, rounds: int,
                  connections: int = 2, rate: float = 20.0) -> dict[str, object]:
    """Setup on the primary with the lag bound on (default) and off, ``rounds`` each."""
    primary, replica = mariadb_data.Server.from_url(primary_url), mariadb_data.Server.from_url(replica_url)
    started = time.perf_counter()
    template = mariadb_data.ensure_template(primary, size)
    build_s = time.perf_counter() - started
    out: dict[str, list[dict[str, object]]] = {"bounded": [], "unbounded": []}
    for _ in range(rounds):
        for mode, lag in (("bounded", ""), ("unbounded", "0")):
            database = f"llmproxy_bench_replica_{uuid.uuid4().hex[:10]}"
            mariadb_data.clone(primary, template, database)
            _wait_replica(primary, replica, database)
            env = {"LLM_PROXY_MAX_REPLICA_LAG": lag} if lag else {}
            try:
                with WriterProbe(primary, database, size.tokens, size.projects, connections, rate) as probe, \
                        LagWatch(primary, replica) as watch:
                    since = time.perf_counter()
                    run, marks = _setup(primary, database, env)
                    until = time.perf_counter()
                    _wait_replica(primary, replica, database)
            finally:
                mariadb_data.drop(primary, database)
            summary = probe.summary(since, until)
            out[mode].append({"seconds": run.seconds, "exit_code": run.returncode, "highest_lag_s": watch.highest,
                              "highest_lag_during": watch.highest_during,
                              "highest_lag_in_fill_s": _lag_in_fill(watch.series, marks),
                              "longest_write_s": summary["write"]["max_s"], **_throttle(marks)})  # type: ignore[index]
            print(f"replica {size.label()} {mode}: setup {run.seconds:.1f} s, highest lag {watch.highest:.1f} s "
                  f"(replica applying: {watch.highest_during})", file=sys.stderr, flush=True)
    return {"label": size.label(), "size": vars(size), "template_build_s": build_s, **out}


def _lag_in_fill(series: list[tuple[float, float]], marks: list[dict[str, object]]) -> float:
    """The highest lag seen while setup's batched fill ran (first to last backfill event)."""
    times = [float(m["t"]) for m in marks if m["kind"] in ("backfill", "throttle")]  # type: ignore[arg-type]
    if not times:
        return 0.0
    return max((lag for at, lag in series if min(times) <= at <= max(times)), default=0.0)


def _wait_replica(primary: mariadb_data.Server, replica: mariadb_data.Server, database: str,
                  timeout: float = 1800.0) -> None:
    """Until the replica has applied everything the primary has logged (after a clone, a setup)."""
    position = parse_gtid_position(primary.run("SELECT @@gtid_binlog_pos;").strip())
    deadline = time.monotonic() + timeout
    while not reached(parse_gtid_position(replica.run("SELECT @@gtid_slave_pos;").strip()), position):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replica did not catch up with {database} in {timeout:.0f} s")
        time.sleep(0.2)


def galera_table(result: dict[str, object]) -> str:
    """Setup time, longest write per node, failures, our retries and pauses, per round."""
    lines = [f"{'Galera goose-1 to head ' + str(result['label']):34} {'setup':>8} {'exit':>4} "
             f"{'longest write node1/2/3':>24} {'failed':>6} {'retries':>7} {'paused':>7}", "-" * 96]
    for number, r in enumerate(result["rounds"], 1):  # type: ignore[arg-type]
        writes = "/".join(f"{p['write']['max_s'] * 1000:.0f}" for p in r["per_node"])
        failed = sum(p["write"]["failed"] + p["audit"]["failed"] for p in r["per_node"])
        lines.append(f"{'  round ' + str(number):34} {r['seconds']:>7.1f}s {r['exit_code']:>4} {writes + ' ms':>24} "
                     f"{failed:>6} {r['conflict_retries']:>7} {r['paused_s']:>6.1f}s")
    return "\n".join(lines)


def replica_table(result: dict[str, object]) -> str:
    """Setup time and the highest replica lag, with the lag bound on and off."""
    lines = [f"{'replica lag, goose-1 to head ' + str(result['label']):40} {'setup':>8} {'highest lag':>11} "
             f"{'in fill':>7} {'pauses':>6} {'paused':>7}", "-" * 88]
    for mode in ("bounded", "unbounded"):
        for r in result[mode]:  # type: ignore[attr-defined]
            name = "  LLM_PROXY_MAX_REPLICA_LAG=" + ("1 (default)" if mode == "bounded" else "0 (off)")
            lines.append(f"{name:40} {r['seconds']:>7.1f}s {r['highest_lag_s']:>10.1f}s "
                         f"{r['highest_lag_in_fill_s']:>6.1f}s {r['pauses']:>6} "
                         f"{r['paused_s']:>6.1f}s")
    return "\n".join(lines)
