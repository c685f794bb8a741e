"""The adoption record: which known state a database was adopted from, and when.

A small table of this tool's own, ``llm_proxy_adoption``, next to ``alembic_version``:
one row per adoption (normally exactly one, ever).  ``llm-proxy migrate status`` shows the
latest row.  It is not one of the service's tables, so fingerprints list it among the
other tables and never compare it, and no revision creates or drops it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llm_proxy_db import __version__
from llm_proxy_db.dialects.base import ADOPTION_TABLE

_metadata = sa.MetaData()
_table = sa.Table(
    ADOPTION_TABLE,
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("adopted_at", sa.DateTime, nullable=False),
    sa.Column("detected_state", sa.Text, nullable=False),
    sa.Column("stamped_revision", sa.Text, nullable=False),
    sa.Column("goose_version", sa.Integer),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("differences", sa.Text),
    sa.Column("tool_version", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class AdoptionRecord:
    """One adoption: the detected state, the revision stamped, and what goose said."""

    detected_state: str
    stamped_revision: str
    goose_version: int | None = None
    forced: bool = False
    differences: tuple[str, ...] = ()
    adopted_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    tool_version: str = __version__

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (shown by ``migrate status --json`` as ``adopted_from``)."""
        return {
            "state": self.detected_state,
            "stamped_revision": self.stamped_revision,
            "goose_version": self.goose_version,
            "forced": self.forced,
            "differences": list(self.differences),
            "adopted_at": self.adopted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tool_version": self.tool_version,
        }


def write(connection: Connection, record: AdoptionRecord) -> None:
    """Add ``record`` (creating the table on first use) inside the caller's transaction."""
    _metadata.create_all(connection, checkfirst=True)
    values = {
        "adopted_at": record.adopted_at.astimezone(dt.timezone.utc).replace(tzinfo=None),
        "detected_state": record.detected_state,
        "stamped_revision": record.stamped_revision,
        "goose_version": record.goose_version,
        "forced": record.forced,
        "differences": "\n".join(record.differences) or None,
        "tool_version": record.tool_version,
    }
    connection.execute(_table.insert(), values)


def clear(connection: Connection) -> None:
    """Drop the record (a database migrated down to base was never adopted as far as it shows)."""
    _table.drop(connection, checkfirst=True)


def latest(connection: Connection) -> AdoptionRecord | None:
    """The most recent adoption, or None when the database was never adopted."""
    if not sa.inspect(connection).has_table(ADOPTION_TABLE):
        return None
    row = connection.execute(sa.select(_table).order_by(_table.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return AdoptionRecord(
        detected_state=row.detected_state,
        stamped_revision=row.stamped_revision,
        goose_version=row.goose_version,
        forced=bool(row.forced),
        differences=tuple((row.differences or "").splitlines()),
        adopted_at=row.adopted_at.replace(tzinfo=dt.timezone.utc),
        tool_version=row.tool_version,
    )
