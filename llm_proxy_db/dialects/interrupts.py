"""A signal (SIGTERM, SIGINT) while revisions run: what each dialect does to stop at once.

:class:`Stop` records the signal; a dialect's ``interruptible(connection)`` context manager
yields one for the run.  The executor turns a run stopped by a signal into one error line
(:class:`~llm_proxy_db.errors.MigrationInterrupted`) saying what state the database is in.

Server dialects (this module's :func:`interruptible`): the handler records the signal and
raises as the process's own handler would (``SystemExit(128 + n)`` for SIGTERM,
``KeyboardInterrupt`` for SIGINT).  Raised inside a query, psycopg cancels the statement on
the server and PyMySQL drops the connection; either way SQLAlchemy invalidates the
connection.  Without the record, the cleanup that followed used the invalidated connection
and the run ended on SQLAlchemy's "Can't reconnect until invalid transaction is rolled back"
(exit 4, PostgreSQL) or on a bare exit 143 with no line at all (issue 21 review, F4).  Only
the main thread may install signal handlers; elsewhere nothing is installed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class Stop:
    """The signal that stopped a run (None: none did)."""

    signal: int | None = None


def raise_for(signum: int) -> None:
    """Raise what the process's default handling of ``signum`` amounts to, in Python."""
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextmanager
def interruptible(connection: Connection) -> Iterator[Stop]:
    """Server dialects: record a SIGTERM or SIGINT for the run, then raise (module docstring)."""
    del connection
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    saved = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def _on_signal(signum: int, _frame: Any) -> None:
        if stop.signal is None:
            stop.signal = signum
            raise_for(signum)
        # A second signal while the first one's rollback is being reported: that report is short.

    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield stop
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
