"""A signal (SIGTERM, SIGINT) while revisions run: what each dialect does to stop at once.

:class:`Stop` records the signal; a dialect's ``interruptible(connection)`` context manager
yields one for the run.  The executor turns a run stopped by a signal into one error line
(:class:`~llm_proxy_db.errors.MigrationInterrupted`).  Server dialects need nothing here:
their drivers cancel the running statement on the server when ``KeyboardInterrupt`` or
``SystemExit`` passes (psycopg) or the connection closes, so they record nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


@dataclass
class Stop:
    """The signal that stopped a run (None: none did)."""

    signal: int | None = None


@contextmanager
def interruptible(connection: Connection) -> Iterator[Stop]:
    """Server dialects: nothing to install (see the module docstring)."""
    del connection
    yield Stop()
