"""One revision and whether a database has it: what ``migrate history`` lists.

Kept apart from :mod:`.revisions` (which imports Alembic) so the fast path at head
(:mod:`llm_proxy_db.quick_answers`) builds the same objects without loading Alembic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RevisionInfo:
    """One revision script: its id, the one it follows, and its one-line description."""

    id: str
    down_revision: str | None
    description: str

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready form."""
        return {"id": self.id, "down_revision": self.down_revision, "description": self.description}


@dataclass(frozen=True)
class RevisionState(RevisionInfo):
    """A revision and whether the database has it: ``applied`` (None when no database was
    read) and when it was applied, from the run log (None when applied before the log or
    by other means)."""

    applied: bool | None = None
    applied_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``applied`` and ``applied_at``."""
        data: dict[str, Any] = dict(super().as_dict())
        data["applied"] = self.applied
        data["applied_at"] = self.applied_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.applied_at else None
        return data
