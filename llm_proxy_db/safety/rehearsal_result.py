"""What a rehearsal found: per-revision timings on the copy and the outcome, as plain data.

Kept apart from :mod:`.rehearse` (which imports Alembic) so the fast ``migrate rehearse`` at
head (:mod:`llm_proxy_db.quick_answers`) builds the same result for the same renderers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_proxy_db.migration.results import StepTiming


@dataclass
class RehearsalResult:
    """How the pending revisions went on the copy: per-revision timings and the outcome."""

    database: str
    before: str | None
    target: str | None
    steps: list[StepTiming] = field(default_factory=list)
    failed_revision: str | None = None
    error: str | None = None
    adopted: str | None = None  # the state an unversioned copy was detected as ...
    stamped: str | None = None  # ... and the revision it was stamped at

    @property
    def ok(self) -> bool:
        """True when every pending revision succeeded on the copy."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "database": self.database,
            "before": self.before,
            "target": self.target,
            "adopted": self.adopted,
            "stamped": self.stamped,
            "ok": self.ok,
            "steps": [{"revision": s.revision, "seconds": round(s.seconds, 3)} for s in self.steps],
            "failed_revision": self.failed_revision,
            "error": self.error,
        }
