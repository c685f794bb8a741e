"""One run of the run log (``migrate log``), and when each revision was applied.

Kept apart from :mod:`.run_log` (which imports SQLAlchemy) so the fast path
(:mod:`llm_proxy_db.quick_answers`) builds the same entries from a bare driver's rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from llm_proxy_db import __version__


@dataclass(frozen=True)
class Entry:
    """One run: what was done (``upgrade``, ``downgrade``, ``adopt``, ``force_stamp``,
    ``restore``), from and to which revision, when, by whom, and how it ended."""

    action: str
    revision: str | None
    from_revision: str | None
    to_revision: str | None
    started_at: dt.datetime
    ended_at: dt.datetime
    outcome: str = "success"
    backup_file: str | None = None
    detail: str | None = None
    tool_version: str = __version__
    host: str = ""
    os_user: str = ""
    duration: float | None = None  # as measured when written (None: from the two times)

    @property
    def seconds(self) -> float:
        """How long it took."""
        if self.duration is not None:
            return self.duration
        return (self.ended_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``migrate log --json``)."""
        return {
            "action": self.action,
            "revision": self.revision,
            "from": self.from_revision,
            "to": self.to_revision,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "seconds": round(self.seconds, 3),
            "outcome": self.outcome,
            "backup_file": self.backup_file,
            "tool_version": self.tool_version,
            "host": self.host,
            "os_user": self.os_user,
            "detail": self.detail,
        }


def applied_at(log: list[Entry]) -> dict[str, dt.datetime | None]:
    """For each revision, when it was last applied (None once reverted after that)."""
    when: dict[str, dt.datetime | None] = {}
    for entry in log:
        if entry.outcome != "success" or entry.revision is None:
            continue
        if entry.action == "upgrade":
            when[entry.revision] = entry.ended_at
        elif entry.action == "downgrade":
            when[entry.revision] = None
    return when


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
