"""What adoption found and plans: the detection, the plan and its result, as plain data.

Kept apart from :mod:`.adopt` (which imports Alembic and SQLAlchemy) so the fast
``migrate adopt --dry-run`` at head (:mod:`llm_proxy_db.quick_answers`) builds the same
objects, rendered and serialised by the same code as the full path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_proxy_db.schema.fingerprint import Fingerprint

if TYPE_CHECKING:
    from llm_proxy_db.adoption.known_states import KnownState
    from llm_proxy_db.migration.results import RunResult

VERSIONED, EMPTY, KNOWN, UNKNOWN = "versioned", "empty", "known", "unknown"


@dataclass(frozen=True)
class Detection:
    """What a database is: versioned, empty, a known state, or unknown (with the reason)."""

    kind: str
    fingerprint: Fingerprint
    current_revision: str | None = None
    state: KnownState | None = None
    goose_version: int | None = None
    nearest: KnownState | None = None
    differences: tuple[str, ...] = ()
    problem: str | None = None
    artefacts: tuple[str, ...] = ()
    # goose-managed where a goose file commits statement by statement (MySQL): a shape matching
    # no state may be a goose file part-applied, so no force is ever suggested for it.
    goose_part_way: bool = False

    @property
    def state_name(self) -> str:
        """The detected state as people read it: a state name, ``empty`` or ``unknown``."""
        if self.kind == VERSIONED:
            return f"versioned at {self.current_revision or 'base'}"
        return self.state.name if self.state else self.kind

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "state": self.state_name,
            "description": self.state.description if self.state else None,
            "goose_version": self.goose_version,
            "nearest_state": self.nearest.name if self.nearest else None,
            "differences": list(self.differences),
            "problem": self.problem,
            "other_tables": list(self.fingerprint.other_tables),
            "service_artefacts": list(self.artefacts),
        }


@dataclass(frozen=True)
class Action:
    """One planned step: ``stamp``, ``record_adoption``, ``sync_goose`` or ``upgrade``."""

    kind: str
    detail: str


@dataclass(frozen=True)
class AdoptionPlan:
    """What adopting would do, or why it refuses (``refusal``)."""

    detection: Detection
    target: str | None
    stamp: str | None = None
    actions: tuple[Action, ...] = ()
    forced: bool = False
    warnings: tuple[str, ...] = ()
    refusal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``llm-proxy-db migrate adopt --dry-run --json``)."""
        return {
            "detected": self.detection.as_dict(),
            "target": self.target,
            "stamp": self.stamp,
            "actions": [{"kind": a.kind, "detail": a.detail} for a in self.actions],
            "forced": self.forced,
            "warnings": list(self.warnings),
            "refusal": self.refusal,
        }


@dataclass
class AdoptionResult:
    """A plan and, unless it was a dry run, the migration run that followed it."""

    plan: AdoptionPlan
    run: RunResult | None = None
    # The goose versions goose_db_version recorded after the stamp (None: not kept in step).
    goose_versions: list[int] | None = None

    @property
    def applied(self) -> bool:
        """False for a dry run."""
        return self.run is not None
