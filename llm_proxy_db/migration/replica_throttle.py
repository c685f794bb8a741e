"""Batched phases pause while a streaming replica falls behind (issue 19).

The model is gh-ost's ``--max-lag-millis`` and pt-online-schema-change's ``--max-lag``: before
each batch of a long phase (0005's backfill on PostgreSQL, any later one), the replicas' replay
lag is read on the primary (:mod:`llm_proxy_db.dialects.postgresql.replication`, which says how), and
while any replica is more than ``LLM_PROXY_MAX_REPLICA_LAG`` seconds behind (default 1, ``0``
switches the throttle off) the phase waits, re-reading every :data:`PAUSE_POLL` seconds, then
resumes.  Each pause is a progress event (``throttle``: ``paused: replica lag 2.3 s ...``,
repeated every :data:`REPORT_EVERY` seconds, and ``resumed ...``).

A replica that never catches up is waited for without a time bound: the batch that would make
it worse is the one not run, nothing is held meanwhile (no lock, no open transaction: the
pause falls between two committed batches), the progress says why every few seconds, and
SIGTERM or Ctrl-C stop the run at once (the phase is resumable: a later run goes on from
where it stopped).  A replica that disconnects stops counting.  While running, the lag is read
at most every :data:`CHECK_EVERY` seconds (a reading costs one small query).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from llm_proxy_db.config.parsing import MAX_REPLICA_LAG_ENV, parse_max_replica_lag
from llm_proxy_db.dialects.postgresql import replication as pg_replication

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

CHECK_EVERY = 0.2
PAUSE_POLL = 0.25
REPORT_EVERY = 5.0
Report = Callable[[str, str], None]


def max_replica_lag(env: Mapping[str, str] | None = None) -> float:
    """``LLM_PROXY_MAX_REPLICA_LAG`` in seconds (default 1; 0 = no throttle)."""
    return parse_max_replica_lag((os.environ if env is None else env).get(MAX_REPLICA_LAG_ENV))


class ReplicaThrottle:
    """Call :meth:`wait` before every batch; it returns at once unless a replica lags."""

    def __init__(
        self,
        connection: Connection,
        report: Report,
        *,
        limit: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.report = report
        self.limit = max_replica_lag() if limit is None else limit
        self.clock, self.sleep = clock, sleep
        self.lag_clock = pg_replication.LagClock(clock=clock)
        self.paused_seconds = 0.0
        self.pauses = 0
        self._next_check = 0.0
        self._unreadable_said = False

    def wait(self) -> float:
        """Pause while a replica lags more than the limit; returns the seconds paused now."""
        if self.limit <= 0 or self.clock() < self._next_check:
            return 0.0
        reading = self._read()
        worst = reading.worst
        if worst is None or worst.seconds <= self.limit:
            return 0.0
        started = next_report = self.clock()
        self.pauses += 1
        while worst is not None and worst.seconds > self.limit:
            if self.clock() >= next_report:
                self.report("throttle", _paused(worst, self.limit, self.clock() - started))
                next_report = self.clock() + REPORT_EVERY
            self.sleep(PAUSE_POLL)
            worst = self._read().worst
        paused = self.clock() - started
        self.paused_seconds += paused
        lag = f"{worst.seconds:.1f} s" if worst is not None else "gone (replica disconnected)"
        self.report("throttle", f"resumed: replica lag {lag} after {paused:.1f} s paused")
        return paused

    def _read(self) -> pg_replication.LagReading:
        reading = self.lag_clock.read(self.connection)
        self._next_check = self.clock() + CHECK_EVERY
        if reading.unreadable and not reading.replicas and not self._unreadable_said:
            self._unreadable_said = True
            self.report(
                "throttle",
                f"replica lag not readable ({reading.unreadable} replica(s) hide their positions from this "
                "role: grant it pg_monitor); not throttling",
            )
        return reading


def _paused(worst: pg_replication.ReplicaLag, limit: float, waited: float) -> str:
    behind = worst.behind_bytes / (1024 * 1024)
    return (
        f"paused: replica lag {worst.seconds:.1f} s ({worst.name}, {behind:.1f} MiB behind; "
        f"limit {limit:g} s, {MAX_REPLICA_LAG_ENV}), waiting {waited:.0f} s so far"
    )
