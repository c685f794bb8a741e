"""What every dialect's head schema shares: the audit outcomes, the audit indexes, the outcome CHECK."""

from __future__ import annotations

OUTCOMES = ("success", "failure", "denied", "error")
AUDIT_INDEXES = {
    "idx_audit_timestamp": ("timestamp",),
    "idx_audit_action": ("action",),
    "idx_audit_project_id": ("project_id",),
    "idx_audit_client_ip": ("client_ip",),
    "idx_audit_request_id": ("request_id",),
    "idx_audit_outcome": ("outcome",),
    "idx_audit_ip_action": ("client_ip", "action"),
}


def outcome_check_sql(outcomes: tuple[str, ...]) -> str:
    """The body of the ``audit_events.outcome`` CHECK for the given allowed values."""
    values = ", ".join(f"'{value}'" for value in outcomes)
    return f"outcome IN ({values})"
