"""Test data for any revision: rows shaped by the columns the live tables have right now.

``seed`` inserts projects, tokens (expired, deactivated, unlimited ...) and audit events of
every outcome the current CHECK allows; ``snapshot`` reads every row back in a form that
survives revisions (``openai_api_key`` is reported as ``api_key``) so that tests can compare
the data before and after a migration.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

OUR_TABLES = ("projects", "tokens", "audit_events")
RENAMED = {"openai_api_key": "api_key"}
BASE_TIME = dt.datetime(2025, 6, 1, 12, 0, 0)


def live_tables(connection: Connection) -> dict[str, sa.Table]:
    """Our tables as they exist now, reflected."""
    metadata = sa.MetaData()
    names = [name for name in OUR_TABLES if sa.inspect(connection).has_table(name)]
    metadata.reflect(bind=connection, only=names)
    return {name: metadata.tables[name] for name in names}


def seed(
    connection: Connection,
    projects: int = 20,
    tokens: int = 200,
    events: int = 200,
    outcomes: tuple[str, ...] = ("success", "failure"),
    prefix: str = "",
) -> None:
    """Insert rows into every table that exists, filling every column that exists."""
    tables = live_tables(connection)
    rows = {
        "projects": [_project(i, prefix) for i in range(projects)],
        "tokens": [_token(i, projects, prefix) for i in range(tokens)],
        "audit_events": [_event(i, projects, outcomes, prefix) for i in range(events)],
    }
    for name, table in tables.items():
        columns = set(table.c.keys())
        values = [{k: v for k, v in row.items() if k in columns} for row in rows[name]]
        if values:
            connection.execute(table.insert(), [_rename_for(v, columns) for v in values])
    connection.commit()


def is_check_violation(error: sa.exc.DBAPIError) -> bool:
    """A CHECK constraint refused a row: IntegrityError on SQLite and PostgreSQL; MariaDB's
    error 4025 and MySQL 8's 3819 come as PyMySQL's OperationalError."""
    if isinstance(error, sa.exc.IntegrityError):
        return True
    code = getattr(error.orig, "args", (None,))[0]
    return code in (3819, 4025)


def snapshot(connection: Connection, exclude: dict[str, set[str]] | None = None) -> dict[str, list[tuple]]:
    """Every row of our tables, keyed by primary business key, columns sorted by name."""
    exclude = exclude or {}
    result: dict[str, list[tuple]] = {}
    for name, table in live_tables(connection).items():
        skip = exclude.get(name, set())
        names = sorted(c.name for c in table.c if c.name not in skip)
        rows = connection.execute(sa.select(*(table.c[c] for c in names))).all()
        result[name] = sorted(
            (_row(names, row) for row in rows),
            key=repr,
        )
    connection.commit()
    return result


def _row(names: list[str], row: Any) -> tuple:
    """One row as sorted (column, value) pairs, with renamed columns under their new name."""
    return tuple(sorted((RENAMED.get(col, col), _plain(val)) for col, val in zip(names, row, strict=True)))


def project_onto(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """``before`` restricted to the tables and columns that ``after`` has."""
    projected: dict[str, list[tuple]] = {}
    for table, rows in after.items():
        keep = {col for col, _ in rows[0]} if rows else set()
        projected[table] = sorted(
            (tuple(pair for pair in row if pair[0] in keep) for row in before.get(table, [])), key=repr
        )
    return projected


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _rename_for(row: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    if "openai_api_key" in columns and "api_key" not in columns and "api_key" in row:
        row = dict(row)
        row["openai_api_key"] = row.pop("api_key")
    return row


def _project(i: int, prefix: str) -> dict[str, Any]:
    active = i % 5 != 0
    return {
        "id": f"{prefix}proj-{i}",
        "name": f"{prefix}project {i}",
        "api_key": f"sk-test-{prefix}{i:04d}",
        "openai_api_key": f"sk-test-{prefix}{i:04d}",
        "is_active": active,
        "deactivated_at": None if active else BASE_TIME + dt.timedelta(days=i),
        "created_at": BASE_TIME,
        "updated_at": BASE_TIME + dt.timedelta(hours=i),
    }


def _token(i: int, projects: int, prefix: str) -> dict[str, Any]:
    expired = i % 4 == 0
    active = i % 6 != 0
    return {
        "id": str(uuid.uuid4()),
        "token": f"{prefix}tok-{i:05d}",
        "project_id": f"{prefix}proj-{i % projects}",
        "expires_at": BASE_TIME - dt.timedelta(days=1) if expired else BASE_TIME + dt.timedelta(days=30 + i),
        "is_active": active,
        "deactivated_at": None if active else BASE_TIME + dt.timedelta(minutes=i),
        "request_count": i * 3,
        "max_requests": None if i % 3 else 1000,
        "created_at": BASE_TIME,
        "last_used_at": None if i % 2 else BASE_TIME + dt.timedelta(seconds=i),
        "cache_hit_count": i % 7,
    }


def _event(i: int, projects: int, outcomes: tuple[str, ...], prefix: str) -> dict[str, Any]:
    return {
        "id": f"{prefix}ev-{i:05d}",
        "timestamp": BASE_TIME + dt.timedelta(seconds=i),
        "action": ("token.create", "token.revoke", "project.update")[i % 3],
        "actor": "admin",
        "project_id": f"{prefix}proj-{i % projects}",
        "request_id": f"req-{i}",
        "correlation_id": None if i % 2 else f"corr-{i}",
        "client_ip": f"10.0.0.{i % 250}",
        "method": "POST",
        "path": "/manage/tokens",
        "user_agent": "pytest",
        "outcome": outcomes[i % len(outcomes)],
        "reason": None if i % 3 else "because",
        "token_id": f"{prefix}tok-{i:05d}",
        "metadata": '{"k": 1}',
    }
