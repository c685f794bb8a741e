"""Throw-away databases on a server, for verify, rehearse and the known states.

Each server dialect says how to create and drop a database; this module does the rest the
same way for all of them: a server that cannot be reached is the usual "cannot open
database" error, a user who may not create databases gets a one-line hint, and the scratch
database is dropped afterwards whatever happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.connecting import connection_error
from llm_proxy_db.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

    from llm_proxy_db.config.settings import Settings


@dataclass(frozen=True)
class ScratchRecipe:
    """How one server dialect creates and drops a database (``{name}`` is filled in)."""

    driver: str
    create_sql: str
    drop_sql: str
    max_name_length: int
    privilege_hint: str
    isolation_level: str | None = None


def scratch_name(server: URL, purpose: str, max_length: int) -> str:
    """``<database>_<purpose>_<random>``, cut from the left to the server's name limit."""
    return f"{server.database or 'llmproxy'}_{purpose}_{uuid.uuid4().hex[:8]}"[-max_length:]


@contextmanager
def scratch_database(recipe: ScratchRecipe, server: URL, purpose: str) -> Iterator[Settings]:
    """A new, empty database on the server of ``server``, dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    name = scratch_name(server, purpose, recipe.max_name_length)
    options = {"isolation_level": recipe.isolation_level} if recipe.isolation_level else {}
    admin = sa.create_engine(server, poolclass=NullPool, **options)
    try:
        _execute(admin, recipe, server, recipe.create_sql.format(name=name))
        try:
            yield Settings(driver=recipe.driver, database_url=server.set(database=name))
        finally:
            _execute(admin, recipe, server, recipe.drop_sql.format(name=name))
    finally:
        admin.dispose()


def _execute(admin: Engine, recipe: ScratchRecipe, server: URL, statement: str) -> None:
    """Run one administrative statement; an unreachable server is "cannot open database ...",
    a refused statement "cannot create a scratch database ..." with the privilege hint."""
    import sqlalchemy as sa

    try:
        connection = admin.connect()
    except sa.exc.DBAPIError as exc:
        raise connection_error(Settings(driver=recipe.driver, database_url=server), exc) from None
    with connection:
        try:
            connection.exec_driver_sql(statement)
            connection.commit()
        except sa.exc.DBAPIError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            described = unquote(server.render_as_string(hide_password=True))
            raise ConfigError(
                f"cannot create a scratch database on {described}: {reason}", hint=recipe.privilege_hint
            ) from None
