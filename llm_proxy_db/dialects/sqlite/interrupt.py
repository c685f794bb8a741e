"""Stopping a SQLite statement at once when SIGTERM or SIGINT arrives.

A Python signal handler runs only between bytecodes of the main thread, so while ``sqlite3``
executes one long statement (a table rebuild's ``INSERT ... SELECT`` of a million rows) the
handler waits for the statement to finish.  For the run, a progress handler gives the
interpreter a chance every :data:`PROGRESS_OPCODES` virtual-machine instructions; the signal
handler installed meanwhile records the signal, interrupts the connection
(``sqlite3_interrupt``: the statement fails with "interrupted", the transaction is rolled
back by the caller) and raises as the process's own handler would (``SystemExit(128 + n)``
for SIGTERM, ``KeyboardInterrupt`` for SIGINT), for when it lands between statements.
Only the main thread may install signal handlers; elsewhere nothing is installed.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from llm_proxy_db.dialects.interrupts import Stop

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# About a millisecond of work between two chances to see a signal; a progress call costs
# far less than that.
PROGRESS_OPCODES = 20_000
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def interruptible(connection: Connection) -> Iterator[Stop]:
    """For the body: a signal interrupts the statement running on ``connection`` at once."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    saved = {signum: signal.getsignal(signum) for signum in _SIGNALS}

    def _on_signal(signum: int, _frame: Any) -> None:
        stop.signal = signum
        raw.interrupt()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    raw.set_progress_handler(lambda: stop.signal is not None, PROGRESS_OPCODES)
    for signum in _SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        yield stop
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        # The signal's report may have closed (invalidated) the connection: nothing to reset,
        # and the interruption, not this, is what the caller must see.
        with contextlib.suppress(sqlite3.ProgrammingError):
            raw.set_progress_handler(None, PROGRESS_OPCODES)
