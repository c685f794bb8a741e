"""What a run changed (:class:`RunResult`) and how long each revision took (:class:`StepTiming`).

Plain data, imported without Alembic or SQLAlchemy: the fast startup path answers "nothing to
do" with a :class:`RunResult` (:mod:`llm_proxy_db.cli.fast_path`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepTiming:
    """How long one revision took."""

    revision: str
    direction: str
    seconds: float
    # Statements or whole attempts tried again after a lock timeout or a deadlock.
    lock_retries: int = 0


@dataclass
class RunResult:
    """What a run changed: revision before and after, and the steps with their timings."""

    before: str | None
    after: str | None
    steps: list[StepTiming] = field(default_factory=list)
    # Applied revisions whose file changed since release (manifest.check_applied).
    checksum_warnings: list[str] = field(default_factory=list)
    # The known state an unversioned database was detected as and stamped from, if it was.
    adopted: str | None = None

    @property
    def applied(self) -> list[str]:
        """Revision ids run, in order."""
        return [step.revision for step in self.steps]
