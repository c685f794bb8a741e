"""What later service releases leave on an older SQLite file, recognised as theirs, not as damage.

From 2025-12-14 the service runs its head ``schema.sql`` with ``IF NOT EXISTS`` at every start
(reference section 3b).  On a file of an older shape that creates only what is missing:

- ``idx_tokens_token ON tokens(token)`` on the old token-keyed ``tokens`` (no ``id`` column);
- on an L0 file, ``audit_events`` in that release's shape: the two-value CHECK (the L1 table
  exactly) before 2026-01-03, the four-value CHECK after, always together with the index above.

:func:`variants` lists the fingerprint as it is and as it would be without those artefacts, so
adoption can match each against the known states.  The revisions tolerate the artefacts:
0005 rebuilds ``tokens`` into a table that has ``idx_tokens_token`` anyway, and 0007 sets the
CHECK to the four values (a no-op on a table that has them).  ``goose_db_version`` and
``migration_lock`` are other tables, never compared; a goose table with only its seed row
(version 0) is what a 2025-12-02 start that failed in file 1 left (see ``known_states``).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Connection

from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.schema.fingerprint import Fingerprint, IndexPrint, normalise_check

TOKEN_INDEX = "idx_tokens_token"
TOKEN_INDEX_PRINT = IndexPrint(columns=("token",), unique=False)
FOUR_VALUE_CHECK = normalise_check("outcome IN ('success', 'failure', 'denied', 'error')")
TWO_VALUE_CHECK = normalise_check("outcome IN ('success', 'failure')")
INDEX_ARTEFACT = "idx_tokens_token on the token-keyed tokens (a start of a 2025-12-14+ release)"
AUDIT_ARTEFACT = (
    "audit_events with the four-value CHECK next to the L0 tables (a start of a 2026-01-03+ release)"
)


def variants(print_: Fingerprint) -> list[tuple[Fingerprint, tuple[str, ...]]]:
    """``print_`` as it is, then without the service's artefacts: (fingerprint, artefacts found).

    Only SQLite files carry them; the caller passes SQLite fingerprints only.
    """
    found: list[tuple[Fingerprint, tuple[str, ...]]] = [(print_, ())]
    without_index = _without_token_index(print_)
    if without_index is None:
        return found
    found.append((without_index, (INDEX_ARTEFACT,)))
    narrowed = _with_two_value_check(without_index)
    if narrowed is not None:
        found.append((narrowed, (INDEX_ARTEFACT, AUDIT_ARTEFACT)))
    return found


def _without_token_index(print_: Fingerprint) -> Fingerprint | None:
    tokens = print_.tables.get("tokens")
    if tokens is None or "id" in tokens.columns:
        return None
    if tokens.indexes.get(TOKEN_INDEX) != TOKEN_INDEX_PRINT:
        return None
    indexes = {name: index for name, index in tokens.indexes.items() if name != TOKEN_INDEX}
    return replace(print_, tables={**print_.tables, "tokens": replace(tokens, indexes=indexes)})


def _with_two_value_check(print_: Fingerprint) -> Fingerprint | None:
    audit = print_.tables.get("audit_events")
    if audit is None or audit.checks != frozenset({FOUR_VALUE_CHECK}):
        return None
    narrowed = replace(audit, checks=frozenset({TWO_VALUE_CHECK}))
    return replace(print_, tables={**print_.tables, "audit_events": narrowed})


# Tables that are not the service's schema but are known by name: never drift, never an operator's.
_KNOWN_TABLES = {
    "alembic_version": "this tool's version table",
    "goose_db_version": "the service's goose version table (kept in step by every revision)",
    "migration_lock": "the lock table of the service's old goose runner",
    "sqlite_sequence": "SQLite's own AUTOINCREMENT counters",
}
_TOOL_PREFIX = "llm_proxy_"


def known_table(name: str) -> str | None:
    """What a table that is not one of the service's three is, when it is known by name, else None
    (``llm_proxy_*``: this tool's bookkeeping, e.g. the run log and the adoption record)."""
    if name in _KNOWN_TABLES:
        return _KNOWN_TABLES[name]
    if name.startswith(_TOOL_PREFIX):
        return "this tool's bookkeeping"
    if name.startswith("sqlite_stat"):
        return "SQLite's planner statistics (ANALYZE)"
    return None


def is_artefact_index(table: str, name: str, index: IndexPrint | None, tokens_have_id: bool) -> bool:
    """Whether an extra index is what a later release's start left: ``idx_tokens_token`` on the
    token-keyed ``tokens`` (no ``id`` column yet)."""
    return table == "tokens" and name == TOKEN_INDEX and index == TOKEN_INDEX_PRINT and not tokens_have_id


def is_artefact_check(table: str, actual: str | None, expected: str | None) -> bool:
    """Whether a CHECK difference is the four-value outcome CHECK a 2026-01-03+ start wrote on an
    ``audit_events`` the revision has with two values (the extra four, the missing two)."""
    return table == "audit_events" and (actual, expected) in ((FOUR_VALUE_CHECK, None), (None, TWO_VALUE_CHECK))


def left_on(connection: Connection) -> bool:
    """Whether the service's starts leave such artefacts on this dialect's databases (SQLite)."""
    return dialect_for(connection).SERVICE_START_ARTEFACTS
