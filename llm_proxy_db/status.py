"""Where a database stands: the result of ``commands.status`` (``migrate status --json``).

A module of its own, with no heavy imports, so the startup check at head
(:mod:`llm_proxy_db.cli.fast_path`) can build and render it without loading Alembic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_proxy_db import quick_status
from llm_proxy_db.dialects import dialect_for


@dataclass(frozen=True)
class Status:
    """Where a database stands against the revision scripts.

    For an unversioned database of a known state, ``pending`` lists what ``setup`` would run
    after stamping it; such a database is not up to date even when nothing is pending.
    """

    database: str
    current_revision: str | None
    head_revision: str
    pending: list[str]
    checksum_warnings: list[str] = field(default_factory=list)
    detected_state: str | None = None
    adopted_from: dict[str, Any] | None = None
    tokens_without_id: int = 0  # written by a pre-token-id release; setup fills them
    tokens_with_empty_id: int = 0  # id '' (MySQL without strict mode, a pre-token-id release); the operator fixes them
    partly_applied: str | None = None  # a revision stopped between steps it commits on their own (MySQL, PostgreSQL)
    unfinished: list[str] = field(default_factory=list)  # a downgrade or restore that did not end (MySQL)
    topology: dict[str, Any] | None = None  # a Galera cluster, a replica, a primary with replicas (MySQL)

    @property
    def up_to_date(self) -> bool:
        """True when nothing is pending and the database is versioned (or empty), and no restore
        or downgrade was left part-way (``unfinished``: the recorded revision is not the schema's)."""
        unversioned = self.current_revision is None and self.detected_state not in (None, "empty")
        return not self.pending and not unversioned and not self.unfinished

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the keys of ``llm-proxy-db migrate status --json``)."""
        return {
            "database": self.database,
            "current_revision": self.current_revision,
            "head_revision": self.head_revision,
            "pending": list(self.pending),
            "up_to_date": self.up_to_date,
            "checksum_warnings": list(self.checksum_warnings),
            "detected_state": self.detected_state,
            "adopted_from": self.adopted_from,
            "tokens_without_id": self.tokens_without_id,
            "tokens_with_empty_id": self.tokens_with_empty_id,
            "partly_applied": self.partly_applied,
            "unfinished": list(self.unfinished),
            "topology": self.topology,
        }


def with_topology(status: Status, settings: Any) -> Status:
    """``status`` with what the server is part of, where the dialect can tell (MySQL)."""
    describe = getattr(dialect_for(settings), "describe_topology", None)
    return with_found_topology(status, describe(settings) if describe is not None else None)


def with_found_topology(status: Status, found: dict[str, Any] | None) -> Status:
    """``status`` with the topology ``found`` (a dialect's ``describe_topology``), if any."""
    from dataclasses import replace

    return replace(status, topology=found) if found is not None else status


def status_at_head(database: str, head: str | None = None, warnings: list[str] | None = None) -> Status:
    """The status of a database known to be at head (and never adopted): no Alembic involved.

    ``head`` and ``warnings`` default to the manifest's head and its checksum check.
    """
    head = head or quick_status.head_revision()
    assert head is not None
    if warnings is None:
        warnings = quick_status.checksum_warnings(head)
    return Status(database, head, head, [], checksum_warnings=warnings)
