"""Live traffic: the service's statements at a fixed rate while ``llm-proxy-db setup`` migrates.

A clone of the goose-1 PostgreSQL template is taken to head by ``bench/child.py setup`` (a
child process, as a deployment would) while several connections run what a replica of the
previous release runs against it (reference section 5): token lookup by value, request
counter increment, audit insert, token insert (without ``id``: old code).  Requests are
issued on a fixed schedule and each latency is measured from its *scheduled* time, so a
stalled connection counts every request it delayed (no coordinated omission).

Reported: failed requests, latency p50/p99/max before (baseline) and during the migration,
requests that stalled longer than 250 ms, the longest ACCESS EXCLUSIVE hold per table (the
``pg_locks`` monitor of ``upgrade.py``) and the migration's wall time.  With matplotlib
installed (``pip install -e '.[bench]'``) it draws latency over time with the migration's
steps and the lock holds marked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datagen
from upgrade import CHILD, LockMonitor, _clone, cached_postgres

STALL_S = 0.25

LOOKUP = "SELECT token, project_id, expires_at, is_active, request_count, max_requests FROM tokens WHERE token = %s"
INCREMENT = (
    "UPDATE tokens SET request_count = request_count + 1, last_used_at = %s WHERE token = %s "
    "AND is_active AND (expires_at IS NULL OR expires_at > %s) "
    "AND (max_requests IS NULL OR request_count < max_requests)"
)
AUDIT = (
    "INSERT INTO audit_events (id, timestamp, action, actor, project_id, request_id, client_ip, "
    "method, path, outcome, token_id) VALUES (%s, now(), 'proxy.request', 'proxy', %s, %s, "
    "'10.0.0.1', 'POST', '/v1/chat/completions', 'success', %s)"
)
INSERT_TOKEN = (
    "INSERT INTO tokens (token, project_id, expires_at, is_active, request_count, max_requests, "
    "created_at) VALUES (%s, %s, NULL, TRUE, 0, 1000, now())"
)
KINDS = ("lookup", "increment", "audit", "lookup", "increment", "audit", "lookup", "insert_token")


@dataclass
class Sample:
    """One request: when it was due (seconds from the start), how long it took, what failed."""

    due: float
    latency: float
    kind: str
    error: str | None = None
    connection: int = 0


@dataclass
class LiveResult:
    """Everything one live run measured."""

    samples: list[Sample] = field(default_factory=list)
    migration: tuple[float, float] = (0.0, 0.0)
    events: list[tuple[float, str]] = field(default_factory=list)
    holds: list[tuple[str, float, float]] = field(default_factory=list)
    lock_waits: list[tuple[float, int]] = field(default_factory=list)
    longest_exclusive_s: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)

    def phase(self, during: bool) -> list[Sample]:
        """Requests due before the migration started, or while it ran."""
        start, end = self.migration
        return [s for s in self.samples if (start <= s.due <= end) == during and (during or s.due < start)]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (not every sample)."""
        failed = [s for s in self.samples if s.error]
        return {
            "requests": len(self.samples),
            "failed": len(failed),
            "failures": sorted({s.error or "" for s in failed})[:5],
            "baseline": _stats(self.phase(during=False)),
            "during": _stats(self.phase(during=True)),
            "stalls_over_250ms": sum(1 for s in self.samples if s.latency > STALL_S),
            "stall_windows": _stall_windows(self.samples, self.events, self.lock_waits),
            "longest_exclusive_s": self.longest_exclusive_s,
            "exclusive_holds": _hold_list(self.holds, self.events),
            "migration_s": self.migration[1] - self.migration[0],
            "steps_s": self.steps,
        }


def _hold_list(
    holds: list[tuple[str, float, float]], events: list[tuple[float, str]]
) -> list[dict[str, object]]:
    """Every ACCESS EXCLUSIVE hold seen, longest first (at most 20): table, when, how long,
    and the migration's last progress event before it (which step took the lock)."""
    out = []
    for table, start, end in sorted(holds, key=lambda h: h[1] - h[2])[:20]:
        before = [text for when, text in events if when <= start]
        out.append({"table": table, "at_s": round(start, 3), "ms": round((end - start) * 1000, 1),
                    "after": before[-1] if before else ""})
    return out


def _stall_windows(
    samples: list[Sample], events: list[tuple[float, str]], lock_waits: list[tuple[float, int]]
) -> list[dict[str, object]]:
    """Requests over 250 ms grouped by time: when, how long, which statements and connections,
    the migration's last progress event before (what it was doing), and the most sessions
    the monitor saw waiting for a lock in that window (0: the stall was not a lock wait; on a
    shared machine, usually the load generator or the server starved of CPU or I/O)."""
    windows: list[dict[str, Any]] = []
    for sample in (s for s in samples if s.latency > STALL_S):
        if windows and sample.due - windows[-1]["end_s"] < 1.0:
            window = windows[-1]
        else:
            before = [text for when, text in events if when <= sample.due]
            window = {"start_s": round(sample.due, 2), "end_s": 0.0, "worst_ms": 0.0, "kinds": {},
                      "connections": set(), "migration_was": before[-1] if before else ""}
            windows.append(window)
        window["end_s"] = round(sample.due, 2)
        window["worst_ms"] = round(max(window["worst_ms"], sample.latency * 1000), 1)
        window["kinds"][sample.kind] = window["kinds"].get(sample.kind, 0) + 1
        window["connections"].add(sample.connection)
    for window in windows:
        window["connections"] = sorted(window["connections"])
        start, end = window["start_s"] - 0.3, window["end_s"] + 0.3
        window["max_lock_waiters"] = max((n for when, n in lock_waits if start <= when <= end), default=0)
    return windows


def _stats(samples: list[Sample]) -> dict[str, float]:
    values = sorted(s.latency for s in samples if not s.error)
    if not values:
        return {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}

    def pick(q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    return {"n": len(values), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": values[-1] * 1000}


class Load:
    """``connections`` threads, each issuing ``rate / connections`` requests per second on schedule."""

    def __init__(self, url: str, size: datagen.Size, rate: float, connections: int) -> None:
        self.url, self.size, self.rate, self.connections = url, size, rate, connections
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, args=(i,)) for i in range(connections)]
        self.started = 0.0

    def __enter__(self) -> Load:
        import psycopg

        # Connected before the schedule starts: connecting is not a request's latency.
        self._sessions = [psycopg.connect(self.url, autocommit=True) for _ in self._threads]
        self.started = time.perf_counter()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _worker(self, index: int) -> None:
        period = self.connections / self.rate
        own: list[Sample] = []
        with self._sessions[index] as connection:
            k = 0
            while not self._stop.is_set():
                due = self.started + index * period / self.connections + k * period
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                kind = KINDS[(k + index) % len(KINDS)]
                error = self._request(connection, kind, k * self.connections + index)
                own.append(Sample(due - self.started, time.perf_counter() - due, kind, error, index))
                k += 1
        self.samples.extend(own)

    def _request(self, connection: Any, kind: str, n: int) -> str | None:
        token = f"tok_{1 + n * 7919 % self.size.tokens:028d}"
        project = f"p{1 + n % self.size.projects:07d}"
        try:
            if kind == "lookup":
                connection.execute(LOOKUP, (token,)).fetchall()
            elif kind == "increment":
                now = time.strftime("%Y-%m-%d %H:%M:%S")
                connection.execute(INCREMENT, (now, token, now))
            elif kind == "audit":
                connection.execute(AUDIT, (f"live_{uuid.uuid4().hex}", project, uuid.uuid4().hex, token))
            else:
                connection.execute(INSERT_TOKEN, (f"live_{uuid.uuid4().hex}", project))
        except Exception as exc:  # noqa: BLE001 - a failed request is a finding, not a crash
            return f"{kind}: {str(exc).strip().splitlines()[0]}"
        return None


def live_upgrade(
    admin_url: str, size: datagen.Size, *, rate: float = 200.0, connections: int = 4,
    baseline_s: float = 5.0, after_s: float = 2.0,
) -> LiveResult:
    """Clone the goose-1 template, run the load, migrate with ``setup`` in a child, measure."""
    template = cached_postgres(admin_url, size)
    result = LiveResult()
    with _clone(admin_url, template) as url, tempfile.TemporaryDirectory() as scratch:
        events_file = Path(scratch) / "events.jsonl"
        env = {**os.environ, "DB_DRIVER": "postgres", "DATABASE_URL": url,
               "BENCH_EVENTS": str(events_file)}
        with LockMonitor(url) as monitor, Load(url, size, rate, connections) as load:
            time.sleep(baseline_s)
            start = time.perf_counter() - load.started
            child = subprocess.run([sys.executable, CHILD, "setup"], env=env, capture_output=True, text=True)
            end = time.perf_counter() - load.started
            time.sleep(after_s)
        if child.returncode != 0:
            raise RuntimeError(f"setup failed under load: {child.stderr[-2000:]}")
        offset = load.started
        result.samples = sorted(load.samples, key=lambda s: s.due)
        result.migration = (start, end)
        result.steps = json.loads(child.stdout.strip().splitlines()[-1])["steps"]
        result.events = _events(events_file, offset)
        result.holds = [(t, a - offset, b - offset) for t, a, b in monitor.holds]
        result.longest_exclusive_s = dict(monitor.longest)
        result.lock_waits = [(when - offset, count) for when, count in monitor.lock_waits]
    return result


def _events(path: Path, offset: float) -> list[tuple[float, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event = json.loads(line)
        out.append((event["t"] - offset, f"{event['revision']} {event['kind']} {event['detail']}".strip()))
    return out


def plot(result: LiveResult, path: Path, title: str) -> Path | None:
    """Latency over time, the migration shaded, revision starts and lock holds marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=80)
    ok = [s for s in result.samples if not s.error]
    ax.scatter([s.due for s in ok], [max(s.latency * 1000, 0.05) for s in ok], s=2, color="tab:blue",
               label="request latency")
    failed = [s for s in result.samples if s.error]
    if failed:
        ax.scatter([s.due for s in failed], [1.0] * len(failed), s=12, color="red", marker="x", label="failed")
    ax.axvspan(*result.migration, color="0.92", zorder=0, label="llm-proxy-db setup")
    for when, text in result.events:
        if "apply_start" in text:
            ax.axvline(when, color="0.5", linewidth=0.6)
            ax.text(when, 0.9, text.split()[0], rotation=90, fontsize=7, va="top",
                    transform=ax.get_xaxis_transform())
    colors = {"tokens": "tab:red", "projects": "tab:orange", "audit_events": "tab:purple"}
    for table, start, end in result.holds:
        ax.axvspan(start, max(end, start + 0.003), ymin=0, ymax=0.06, color=colors.get(table, "k"))
    ax.axhline(STALL_S * 1000, color="red", linestyle=":", linewidth=0.8, label="250 ms stall")
    ax.set_yscale("log")
    ax.set_xlabel("seconds (bars at the bottom: ACCESS EXCLUSIVE holds, red = tokens)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, markerscale=3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def targets(summary: dict[str, Any], label: str) -> list[dict[str, object]]:
    """The issue's live-traffic targets, met or missed, for one size."""
    base_p99, during = summary["baseline"]["p99_ms"], summary["during"]
    longest = max(summary["longest_exclusive_s"].values(), default=0.0) * 1000
    cap = max(3 * base_p99, 50.0)
    return [
        {"target": f"live {label}: failed requests", "value": summary["failed"], "limit": 0,
         "met": summary["failed"] == 0},
        {"target": f"live {label}: longest ACCESS EXCLUSIVE (ms)", "value": round(longest, 1),
         "limit": 50, "met": longest <= 50},
        {"target": f"live {label}: p99 during (ms)", "value": round(during["p99_ms"], 1),
         "limit": round(cap, 1), "met": during["p99_ms"] <= cap},
        {"target": f"live {label}: stalls > 250 ms", "value": summary["stalls_over_250ms"], "limit": 0,
         "met": summary["stalls_over_250ms"] == 0},
    ]
