"""The MariaDB case: goose-1 (MySQL shape) to head, ``setup`` against the ``mariadb`` client floor,
with the service's token writes running throughout and timed.

Each round clones the cached template twice (``mariadb_data``): one copy is taken to head by
``llm-proxy-db setup`` in a child process (``child.py``, adoption included), the other by the
hand-written script ``floor.MARIADB_SCRIPT`` piped into the ``mariadb`` client; ours and the
floor alternate round by round.  During both, :class:`writer_probe.WriterProbe` runs the
service's token statements and records how long each write to ``tokens`` took.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import datagen
import floor
import mariadb_data
from measure import Run, Samples, run_process
from writer_probe import WriterProbe

CHILD = str(Path(__file__).resolve().parent / "child.py")
SETTLE_S = 0.5  # probe traffic before and after the migration, outside the measured window


def unavailable(url: str) -> str | None:
    """Why the case cannot run against ``url`` (no server, not MariaDB, no ``mariadb`` client), or None.

    The template is generated from MariaDB's sequence engine and the floor is run by the
    ``mariadb`` client, so a MySQL 8 server is not measured (said so, not silently)."""
    import shutil

    if shutil.which("mariadb") is None:
        return "no `mariadb` client on PATH"
    try:
        connection = mariadb_data.Server.from_url(url).connect()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is reported as the reason
        return f"no server at {url.split('@')[-1]}: {exc.__class__.__name__}"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0])
    finally:
        connection.close()
    return None if "mariadb" in version.lower() else f"the server is not MariaDB ({version})"


def mariadb_upgrade(url: str, size: datagen.Size, *, rounds: int, connections: int = 3,
                    rate: float = 20.0) -> dict[str, object]:
    """``rounds`` interleaved rounds of ours and the floor; medians, ratio, blocked writes."""
    server = mariadb_data.Server.from_url(url)
    started = time.perf_counter()
    template = mariadb_data.ensure_template(server, size)
    build_s = time.perf_counter() - started
    ours, low = Samples("ours"), Samples("floor")
    steps: dict[str, list[float]] = {}
    floor_steps: dict[str, list[float]] = {}
    probes: dict[str, list[dict[str, object]]] = {"ours": [], "floor": []}
    load: list[tuple[float, float, float]] = []
    same_schema: bool | None = None
    for _ in range(rounds):
        load.append(os.getloadavg())
        schemas = {}
        for who in ("ours", "floor"):
            database = f"llmproxy_bench_{uuid.uuid4().hex[:10]}"
            mariadb_data.clone(server, template, database)
            try:
                run, probe = _migrate(server, database, size, who, connections, rate)
                schemas[who] = _schema(server, database)
            finally:
                mariadb_data.drop(server, database)
            (ours if who == "ours" else low).add(run)
            print(f"mariadb {size.label()} {who}: {run.seconds:.1f} s, longest write to tokens "
                  f"{probe['write']['max_s'] * 1000:.0f} ms, load {os.getloadavg()[0]:.2f}",  # type: ignore[index]
                  file=sys.stderr, flush=True)
            probes[who].append(probe)
            timings = _child_steps(run) if who == "ours" else floor_statements(run.stdout)
            for step, seconds in timings.items():
                (steps if who == "ours" else floor_steps).setdefault(step, []).append(seconds)
        same_schema = schemas["ours"] == schemas["floor"] if same_schema is None else same_schema
    load.append(os.getloadavg())
    return {
        "label": size.label(),
        "size": vars(size),
        "template_build_s": build_s,
        "ours": ours.as_dict(),
        "floor": low.as_dict(),
        "ratio": ours.median / low.median,
        "steps_s": steps,
        "floor_statements_s": floor_steps,
        "writes": {who: _worst(rounds_) for who, rounds_ in probes.items()},
        "probe_rounds": probes,
        "probe": {"connections": connections, "cycles_per_s": rate},
        "same_schema_as_floor": same_schema,
        "loadavg": load,
    }


def _migrate(server: mariadb_data.Server, database: str, size: datagen.Size, who: str,
             connections: int, rate: float) -> tuple[Run, dict[str, object]]:
    with WriterProbe(server, database, size.tokens, size.projects, connections, rate) as probe:
        time.sleep(SETTLE_S)
        since = time.perf_counter()
        events = Path(f"/tmp/llmproxy-bench-events-{database}.jsonl")
        if who == "ours":
            env = {**os.environ, "DB_DRIVER": "mysql", "DATABASE_URL": server.url(database),
                   "BENCH_EVENTS": str(events)}
            env.pop("DATABASE_PATH", None)
            run = run_process([sys.executable, CHILD, "setup"], env)
        else:
            argv, env = server.client(database)
            run = run_process([*argv, "-vvv"], env, stdin=floor.MARIADB_SCRIPT)  # -vvv: each statement's time
        until = time.perf_counter()
        time.sleep(SETTLE_S)
    summary = probe.summary(since, until)
    if events.exists():
        summary["slowest_writes"] = _attribute(probe, events, since, until)
        events.unlink()
    return run, summary


def _attribute(probe: WriterProbe, events: Path, since: float, until: float) -> list[dict[str, object]]:
    """The five longest writes to ``tokens`` with what setup was doing when each started
    (the child's progress events carry ``perf_counter`` times, the same clock on Linux)."""
    import json

    marks = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    writes = sorted((s for s in probe.samples if s.kind == "write" and since <= s.started <= until),
                    key=lambda s: s.seconds, reverse=True)[:5]
    out = []
    for write in writes:
        before = [m for m in marks if m["t"] <= write.started]
        last = before[-1] if before else {"revision": "", "kind": "start-up", "detail": ""}
        doing = f"{last['revision']} {last['kind']} {last['detail'] or ''}".strip()
        out.append({"seconds": write.seconds, "at_s": write.started - since, "during": doing[:90]})
    return out


def _worst(rounds: list[dict[str, object]]) -> dict[str, object]:
    """Over all rounds: the longest write, the worst p99, the failures, per kind."""
    out: dict[str, object] = {}
    for kind in ("write", "lookup", "audit"):
        chosen = [r[kind] for r in rounds]
        out[kind] = {
            "max_s": max(c["max_s"] for c in chosen),  # type: ignore[index]
            "p99_s": max(c["p99_s"] for c in chosen),  # type: ignore[index]
            "n": sum(c["n"] for c in chosen),  # type: ignore[index]
            "over_1s": sum(c["over_1s"] for c in chosen),  # type: ignore[index]
            "failed": sum(c["failed"] for c in chosen),  # type: ignore[index]
        }
    return out


def floor_statements(stdout: str) -> dict[str, float]:
    """Each floor statement's own time, from the ``mariadb -vvv`` echo
    (``Query OK ... (1.234 sec)``, ``(1 min 24.017 sec)`` past a minute)."""
    import re

    out: dict[str, float] = {}
    blocks = re.findall(r"-{14}\n(.*?)\n-{14}\n(.*?)(?=\n-{14}\n|\Z)", stdout, flags=re.DOTALL)
    for statement, result in blocks:
        took = re.search(r"\((?:(\d+) hours? )?(?:(\d+) min )?(\d+\.\d+) sec\)", result)
        if took:
            hours, minutes, seconds = (float(part or 0) for part in took.groups())
            out[" ".join(statement.split())[:70]] = hours * 3600 + minutes * 60 + seconds
    return out


def _schema(server: mariadb_data.Server, database: str) -> str:
    """``SHOW CREATE TABLE`` of the service's tables (the floor must reach what ``setup`` does)."""
    return server.run("".join(f"SHOW CREATE TABLE {table};\n" for table in ("projects", "tokens", "audit_events")),
                      database)


def _child_steps(run: Run) -> dict[str, float]:
    import json

    return dict(json.loads(run.stdout.strip().splitlines()[-1])["steps"])


def table(result: dict[str, object]) -> str:
    """The MariaDB rows: ours, floor, ratio, and the writes to ``tokens`` that waited longest."""
    r = result
    writes = r["writes"]
    lines = [f"{'MariaDB goose-1 to head':30} {'median':>9} {'ratio':>6} {'tokens write max/p99':>22} "
             f"{'failed':>6} {'audit insert max':>16}"]
    lines.append("-" * 96)
    for who in ("ours", "floor"):
        w = writes[who]  # type: ignore[index]
        median = r[who]["median_s"]  # type: ignore[index]
        ratio = f"{r['ratio']:.2f}x" if who == "ours" else ""
        lines.append(
            f"{r['label'] + ' ' + who:30} {median:>8.2f}s {ratio:>6} "
            f"{w['write']['max_s'] * 1000:>10.0f}/{w['write']['p99_s'] * 1000:<8.0f}ms "
            f"{w['write']['failed']:>6} {w['audit']['max_s'] * 1000:>14.0f}ms"
        )
    per_step = ", ".join(f"{rev} {min(times):.2f}-{max(times):.2f}s" for rev, times in r["steps_s"].items())  # type: ignore[union-attr]
    lines.append(f"  per revision (ours): {per_step}")
    slowest = sorted((w for p in r["probe_rounds"]["ours"] for w in p.get("slowest_writes", [])),  # type: ignore[index]
                     key=lambda w: w["seconds"], reverse=True)[:3]
    for write in slowest:
        lines.append(f"  ours: a {write['seconds'] * 1000:.0f} ms write, after: {write['during']}")
    for statement, times in r.get("floor_statements_s", {}).items():  # type: ignore[union-attr]
        lines.append(f"  floor {statistics.median(times):7.2f}s  {statement}")
    loads = r["loadavg"]
    lines.append(f"  load average (1 min) over the rounds: {', '.join(f'{a[0]:.2f}' for a in loads)}")  # type: ignore[union-attr]
    if r.get("same_schema_as_floor") is False:
        lines.append("  !!! the floor's end schema differs from setup's")
    return "\n".join(lines)
