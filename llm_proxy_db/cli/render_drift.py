"""``migrate drift`` for people: one line per difference, then the statements that reconcile it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_proxy_db.adoption.live_drift import DriftItem, DriftReport

_LABELS = {
    "drift": "DRIFT    ",
    "reference_drift": "DRIFT    ",
    "operator_addition": "addition ",
    "service_artefact": "service  ",
}
_ORIGINS = {
    "drift": "",
    "reference_drift": " (the reference lacks what the revision has)",
    "operator_addition": " (operator addition: kept)",
    "service_artefact": " (left by a later service release: expected)",
}


def render_drift(report: DriftReport) -> str:
    """The comparison, each difference, the recognised tables and the reconciling statements."""
    side, reference = report.database, report.reference
    lines = [f"database:  {side.description} ({side.dialect}, revision {side.revision or 'base'})"]
    if reference is None:
        lines.append(f"reference: the schema of revision {side.revision or 'base'} on {side.dialect}")
    else:
        revision = reference.revision or "base"
        lines.append(f"reference: {reference.description} ({reference.dialect}, revision {revision})")
    lines += [_line(item) for item in report.items]
    if report.recognised:
        lines.append(f"recognised: {', '.join(sorted(report.recognised))} (bookkeeping, not compared)")
    statements = [sql for item in report.items if item.origin == "drift" for sql in _statements(item)]
    if statements:
        lines.append(f"to reconcile this database ({side.dialect}):")
        lines += [f"  {text}" for text in statements]
    drifted = sum(item.origin in ("drift", "reference_drift") for item in report.items)
    outcome = f"drift: {drifted} difference(s) to reconcile" if drifted else "no drift"
    if report.strict and not drifted and report.items:
        outcome = f"drift (--strict): {len(report.items)} operator addition(s)"
    additions = len(report.items) - drifted
    lines.append(outcome + (f"; {additions} other difference(s) reported" if additions and drifted else ""))
    return "\n".join(lines)


def _line(item: DriftItem) -> str:
    return f"{_LABELS[item.origin]} {item.difference.describe()}{_ORIGINS[item.origin]}"


def _statements(item: DriftItem) -> list[str]:
    """The item's SQL, or a comment saying why there is none, with its caveat."""
    found = list(item.reconciliation.statements)
    note = item.reconciliation.note
    if not found:
        return [f"-- {item.difference.describe()}: {note or 'no statement'}"]
    if note:
        found.append(f"-- caution: {note}")
    return found
