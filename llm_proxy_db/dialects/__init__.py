"""One package per database dialect, behind the small protocol of :mod:`llm_proxy_db.dialects.base`.

:mod:`~llm_proxy_db.dialects.sqlite` (the service's default), :mod:`~llm_proxy_db.dialects.postgresql`
and :mod:`~llm_proxy_db.dialects.mysql` (MySQL 8 and MariaDB; its resumable revision steps are
in :mod:`~llm_proxy_db.dialects.mysql.ddl`), each split by concern (``base``, ``connection``,
``locks``, ``client``, ``creation``, ...).  :func:`dialect_for` finds the package for settings,
a connection or a name; adding a dialect means one package here, an entry in :data:`_MODULES`,
and the revisions' dialect branches.  The dialects are the ground floor of the package's
layering (``docs/architecture.md``): they import nothing above them.
Importing this package imports no dialect module (the
fast startup path imports only the one it reads with).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.dialects.base import Dialect, ServerDialect

# The service's DB_DRIVER spelling and SQLAlchemy's dialect name -> the module.
_MODULES = {
    "sqlite": "llm_proxy_db.dialects.sqlite",
    "postgres": "llm_proxy_db.dialects.postgresql",
    "postgresql": "llm_proxy_db.dialects.postgresql",
    "mysql": "llm_proxy_db.dialects.mysql",
}
#: The SQLAlchemy names of every dialect, in a stable order.
SQLALCHEMY_NAMES = ("sqlite", "postgresql", "mysql")


def dialect_for(what: Settings | Connection | str) -> Dialect:
    """The dialect module of ``what``: settings, a connection, a driver or SQLAlchemy name."""
    if isinstance(what, str):
        name = what
    elif hasattr(what, "driver"):
        name = cast("Settings", what).driver
    else:
        name = cast("Connection", what).dialect.name
    try:
        return cast("Dialect", importlib.import_module(_MODULES[name]))
    except KeyError:
        raise ValueError(f"no dialect module for {name!r}") from None


def server_dialect_for(what: Settings | Connection | str) -> ServerDialect:
    """:func:`dialect_for` for a dialect with a server (dumps, scratch databases); ValueError for SQLite."""
    dialect = dialect_for(what)
    if not hasattr(dialect, "scratch_database"):
        raise ValueError(f"{dialect.DRIVER} has no server")
    return cast("ServerDialect", dialect)


def all_dialects() -> list[Dialect]:
    """Every dialect module, in :data:`SQLALCHEMY_NAMES` order."""
    return [dialect_for(name) for name in SQLALCHEMY_NAMES]
