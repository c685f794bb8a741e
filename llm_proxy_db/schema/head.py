"""The head schema, declared once as SQLAlchemy Core metadata.

It is the ``target_metadata`` for autogenerate and ``alembic check``, and what the tests
compare against the reference DDL.  The two dialects differ where the service's own DDL
differs: ``DATETIME`` vs ``TIMESTAMP`` (SQLAlchemy's ``DateTime`` renders each), and
``tokens.id``, a UUID-holding ``TEXT`` on SQLite but a native ``UUID`` with a
``gen_random_uuid()`` default on PostgreSQL.  Constraint names are PostgreSQL's own
(``tokens_pkey``, ``tokens_token_unique``, ``audit_events_outcome_check``); on SQLite the
service's constraints are unnamed, so names are left out there.

MySQL (MySQL 8 and MariaDB) follows the service's MySQL files: ``VARCHAR(191)`` keys,
``VARCHAR`` sizes on the short audit columns, ``DATETIME(6)`` with ``CURRENT_TIMESTAMP(6)``
(``ON UPDATE`` on ``projects.updated_at``), ``tokens.id CHAR(36)`` without a default,
``tokens_token_unique`` and the named ``audit_events_outcome_check``, no ``idx_tokens_token``
(the unique constraint is that index), tables InnoDB/utf8mb4_unicode_ci.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.schema.head_common import AUDIT_INDEXES, OUTCOMES, outcome_check_sql
from llm_proxy_db.schema.head_mysql import mysql_head_metadata

__all__ = ["AUDIT_INDEXES", "OUTCOMES", "head_metadata", "outcome_check_sql", "shared_head_metadata"]

@functools.cache
def head_metadata(dialect_name: str) -> sa.MetaData:
    """The head schema for ``sqlite``, ``postgresql`` or ``mysql`` (the dialect's
    ``HEAD_SCHEMA``: ``sqlite``, ``server`` or ``mysql``).

    Built once per process (every revision's run passes it to Alembic): shared, never modify it.
    """
    kind = dialect_for(dialect_name).HEAD_SCHEMA
    if kind == "mysql":
        return mysql_head_metadata()
    return shared_head_metadata(server=kind == "server")


def shared_head_metadata(*, server: bool) -> sa.MetaData:
    """The head schema SQLite and PostgreSQL share.  ``server``: PostgreSQL's (named
    constraints, NOT NULL keys); else SQLite's, as the service's DDL writes it."""
    metadata = sa.MetaData()
    _projects(metadata, server)
    _tokens(metadata, server)
    _audit_events(metadata, server)
    return metadata


def _name(pg: bool, name: str) -> str | None:
    return name if pg else None


def _key(name: str, pg: bool, type_: sa.types.TypeEngine[object] | type = sa.Text) -> sa.Column:
    """A primary-key column.  SQLite lets a non-INTEGER primary key hold NULL and the
    service's DDL (``id TEXT PRIMARY KEY``) never said NOT NULL, so neither do we there."""
    return sa.Column(name, type_, nullable=not pg)


def _now() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP")


def _projects(metadata: sa.MetaData, pg: bool) -> sa.Table:
    return sa.Table(
        "projects",
        metadata,
        _key("id", pg),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("api_key", sa.Text, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("deactivated_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=_now()),
        sa.Column("updated_at", sa.DateTime, nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("id", name=_name(pg, "projects_pkey")),
        sa.UniqueConstraint("name", name=_name(pg, "projects_name_key")),
        sa.Index("idx_projects_name", "name"),
    )


def _tokens(metadata: sa.MetaData, pg: bool) -> sa.Table:
    id_column = (
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=False),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        )
        if pg
        else _key("id", pg)
    )
    return sa.Table(
        "tokens",
        metadata,
        id_column,
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("deactivated_at", sa.DateTime),
        sa.Column("request_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("max_requests", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=_now()),
        sa.Column("last_used_at", sa.DateTime),
        sa.Column("cache_hit_count", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("id", name=_name(pg, "tokens_pkey")),
        sa.UniqueConstraint("token", name=_name(pg, "tokens_token_unique")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            ondelete="CASCADE",
            name=_name(pg, "tokens_project_id_fkey"),
        ),
        sa.Index("idx_tokens_token", "token"),
        sa.Index("idx_tokens_project_id", "project_id"),
        sa.Index("idx_tokens_expires_at", "expires_at"),
        sa.Index("idx_tokens_is_active", "is_active"),
    )


def _audit_events(metadata: sa.MetaData, pg: bool) -> sa.Table:
    text_columns = (
        "project_id", "request_id", "correlation_id", "client_ip",
        "method", "path", "user_agent",
    )
    table = sa.Table(
        "audit_events",
        metadata,
        _key("id", pg),
        sa.Column("timestamp", sa.DateTime, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        *(sa.Column(name, sa.Text) for name in text_columns),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("token_id", sa.Text),
        sa.Column("metadata", sa.Text),
        sa.PrimaryKeyConstraint("id", name=_name(pg, "audit_events_pkey")),
        sa.CheckConstraint(outcome_check_sql(OUTCOMES), name=_name(pg, "audit_events_outcome_check")),
    )
    for name, columns in AUDIT_INDEXES.items():
        sa.Index(name, *(table.c[column] for column in columns))
    return table
