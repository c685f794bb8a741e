"""The head schema on MySQL 8 and MariaDB, as the service's MySQL goose files 1-5 leave it.

Kept apart from :mod:`llm_proxy_db.schema.head` because the MySQL spelling differs in nearly
every column (see that module's docstring); the tables, columns, indexes and constraints
are the same as on the other dialects, minus ``idx_tokens_token``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from llm_proxy_db.schema.head_common import AUDIT_INDEXES, OUTCOMES, outcome_check_sql

TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci",
}
AUDIT_LENGTHS = {
    "project_id": 191, "request_id": 191, "correlation_id": 191, "token_id": 191,
    "client_ip": 45, "method": 10, "action": 255, "actor": 255,
}


def mysql_head_metadata() -> sa.MetaData:
    """The head schema for ``mysql``."""
    metadata = sa.MetaData()
    _projects(metadata)
    _tokens(metadata)
    _audit_events(metadata)
    return metadata


def _key(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(191), nullable=nullable)


def _timestamp(name: str, *, required: bool = False, now: bool = False, on_update: bool = False) -> sa.Column:
    """A DATETIME(6) column; ``now`` defaults it to ``CURRENT_TIMESTAMP(6)`` (and updates it)."""
    current = "CURRENT_TIMESTAMP(6)"
    default = sa.text(f"{current} ON UPDATE {current}" if on_update else current) if now else None
    return sa.Column(name, mysql.DATETIME(fsp=6), nullable=not required, server_default=default)


def _flag(name: str) -> sa.Column:
    # BOOLEAN is TINYINT(1) on MySQL, which reports its TRUE default as 1.
    return sa.Column(name, sa.Boolean, nullable=False, server_default=sa.text("1"))


def _projects(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "projects",
        metadata,
        _key("id"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("api_key", sa.Text, nullable=False),
        _flag("is_active"),
        _timestamp("deactivated_at"),
        _timestamp("created_at", required=True, now=True),
        _timestamp("updated_at", required=True, now=True, on_update=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="name"),
        sa.Index("idx_projects_name", "name"),
        **TABLE_OPTIONS,
    )


def _tokens(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "tokens",
        metadata,
        sa.Column("id", sa.CHAR(36), nullable=False),
        _key("token"),
        _key("project_id"),
        _timestamp("expires_at"),
        _flag("is_active"),
        _timestamp("deactivated_at"),
        sa.Column("request_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_requests", sa.Integer),
        _timestamp("created_at", required=True, now=True),
        _timestamp("last_used_at"),
        sa.Column("cache_hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token", name="tokens_token_unique"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE", name="tokens_ibfk_1"),
        sa.Index("idx_tokens_project_id", "project_id"),
        sa.Index("idx_tokens_expires_at", "expires_at"),
        sa.Index("idx_tokens_is_active", "is_active"),
        **TABLE_OPTIONS,
    )


def _audit_events(metadata: sa.MetaData) -> sa.Table:
    def text(name: str, *, required: bool = False) -> sa.Column:
        length = AUDIT_LENGTHS.get(name)
        return sa.Column(name, sa.String(length) if length else sa.Text, nullable=not required)

    table = sa.Table(
        "audit_events",
        metadata,
        _key("id"),
        _timestamp("timestamp", required=True),
        text("action", required=True),
        text("actor", required=True),
        *(text(name) for name in ("project_id", "request_id", "correlation_id", "client_ip", "method")),
        text("path"),
        text("user_agent"),
        sa.Column("outcome", sa.String(20), nullable=False),
        text("reason"),
        text("token_id"),
        text("metadata"),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(outcome_check_sql(OUTCOMES), name="audit_events_outcome_check"),
        **TABLE_OPTIONS,
    )
    for name, columns in AUDIT_INDEXES.items():
        sa.Index(name, *(table.c[column] for column in columns))
    return table
