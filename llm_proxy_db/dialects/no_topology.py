"""Poolers and standbys for dialects that do not probe them up front (SQLite, MySQL).

The dialect protocol's ``transaction_pooler`` and ``read_only_reason``, answered "nothing
found": SQLite has no server; MySQL's read-only servers are not checked up front (its scratch
databases' refusal still names a read-only server rather than a privilege: dialects/scratch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.config.settings import Settings


def transaction_pooler(settings: Settings) -> str | None:
    """None: not probed here (PostgreSQL's transaction poolers: dialects/postgresql/pooler.py)."""
    del settings
    return None


def read_only_reason(settings: Settings) -> str | None:
    """None: not checked up front here."""
    del settings
    return None


def read_only_reason_on(connection: Connection, settings: Settings) -> str | None:
    """None: not checked up front here."""
    del connection, settings
    return None


def check_copy_source(settings: Settings) -> None:
    """Nothing: the copy itself refuses nothing up front here (SQLite; PostgreSQL's standby
    and pooler are refused before, by ``safety.topology``)."""
    del settings
