"""The service's token statements at a fixed rate, timed one by one, while a migration runs.

A few connections (autocommit, as the service's driver) each run, at a fixed rate, the
service's token traffic (reference section 5): the lookup by token value, the request
counter ``UPDATE``, and every tenth time a token ``INSERT``.  Each statement's own duration
is recorded: a write that waited for a lock (a row lock of a fill batch, the metadata lock
of an ``ALTER``) shows as a long write.  The summary gives the longest and the 99th
percentile write time, and the failed statements (lock wait timeouts, ...).  Every tenth
cycle also inserts an audit event, timed apart ("audit"): the one table whose writes MariaDB
must block (0007's CHECK is validated by a table copy).

The INSERT is the running release's: without ``id`` while the legacy service runs (the new
column's default fills it), and with a new UUID once the table requires one (after 0005).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

LOOKUP = ("SELECT token, project_id, expires_at, is_active, request_count, max_requests, created_at, "
          "last_used_at FROM tokens WHERE token = %s")
COUNTER = "UPDATE tokens SET request_count = request_count + 1, last_used_at = NOW(6) WHERE token = %s"
INSERT_LEGACY = ("INSERT INTO tokens (token, project_id, expires_at, is_active, request_count, max_requests, "
                 "created_at) VALUES (%s, %s, NULL, 1, 0, NULL, NOW(6))")
INSERT_HEAD = ("INSERT INTO tokens (id, token, project_id, expires_at, is_active, request_count, max_requests, "
               "created_at) VALUES (%s, %s, %s, NULL, 1, 0, NULL, NOW(6))")
AUDIT = ("INSERT INTO audit_events (id, timestamp, action, actor, project_id, outcome) "
         "VALUES (%s, NOW(6), 'token.use', 'proxy', %s, 'success')")
NO_DEFAULT = 1364  # ER_NO_DEFAULT_FOR_FIELD: the table now wants the id from the client


@dataclass
class Sample:
    """One statement: when it started (perf_counter), what it was, how long it took, if it failed."""

    started: float
    kind: str
    seconds: float
    error: str | None = None


@dataclass
class WriterProbe:
    """``connections`` threads at ``rate`` cycles a second each; use as a context manager."""

    server: Any  # mariadb_data.Server
    database: str
    tokens: int
    projects: int
    connections: int = 3
    rate: float = 20.0
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(self.connections)]

    def __enter__(self) -> WriterProbe:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, number: int) -> None:
        connection = self.server.connect(self.database)
        rng = random.Random(number)
        legacy_insert = True
        interval = 1.0 / self.rate
        next_at = time.perf_counter()
        cycle = 0
        try:
            while not self._stop.is_set():
                token = f"tok_{1 + rng.randrange(self.tokens):028d}"
                self._timed(connection, "lookup", LOOKUP, (token,))
                self._timed(connection, "write", COUNTER, (token,))
                cycle += 1
                if cycle % 10 == 0:
                    new = f"tok_probe_{uuid.uuid4().hex}"
                    project = f"p{1 + rng.randrange(self.projects):07d}"
                    if legacy_insert:
                        code = self._timed(connection, "write", INSERT_LEGACY, (new, project))
                        legacy_insert = code != NO_DEFAULT
                    if not legacy_insert:
                        self._timed(connection, "write", INSERT_HEAD, (str(uuid.uuid4()), new, project))
                    self._timed(connection, "audit", AUDIT, (f"ev_probe_{uuid.uuid4().hex}", project))
                next_at += interval
                delay = next_at - time.perf_counter()
                if delay > 0:
                    self._stop.wait(delay)
                else:  # late (a statement waited): keep the rate, do not catch up in a burst
                    next_at = time.perf_counter()
        finally:
            connection.close()

    def _timed(self, connection: Any, kind: str, sql: str, params: tuple[object, ...]) -> int | None:
        import pymysql

        started = time.perf_counter()
        error: str | None = None
        code: int | None = None
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                cursor.fetchall()
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            error = f"{code}: {exc.args[1] if len(exc.args) > 1 else exc}"
        sample = Sample(started, kind, time.perf_counter() - started, error)
        if code == NO_DEFAULT:  # the switch to the head INSERT, not a failure
            return code
        with self._lock:
            self.samples.append(sample)
        return code

    def summary(self, since: float, until: float) -> dict[str, object]:
        """Write and lookup times of the statements started in [since, until]."""
        window = [s for s in self.samples if since <= s.started <= until]
        out: dict[str, object] = {}
        for kind in ("write", "lookup", "audit"):
            chosen = [s for s in window if s.kind == kind]
            times = sorted(s.seconds for s in chosen)
            out[kind] = {
                "n": len(times),
                "max_s": times[-1] if times else 0.0,
                "p99_s": _percentile(times, 0.99),
                "median_s": statistics.median(times) if times else 0.0,
                "over_1s": sum(1 for t in times if t > 1.0),
                "failed": sum(1 for s in chosen if s.error),
                "errors": sorted({s.error for s in chosen if s.error})[:5],
                # when each statement over 1 s started (perf_counter: the setup child's clock too)
                "slow_started": [round(s.started, 3) for s in chosen if s.seconds > 1.0][:20],
            }
        return out


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
