"""Case 1: startup at head.  Whole processes and in-process calls, each against its floor."""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from measure import Run, Samples, run_process, side_by_side, timed

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.quick_status import VERSION_QUERY

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def whole_process(
    settings: Settings, env: Mapping[str, str], rounds: int, warmup: int = 1
) -> dict[str, Samples]:
    """``migrate status --json``, ``setup`` (a deployment's pre-start step), ``alembic current``,
    the plain client reading the version table, and a bare Python start, side by side."""
    floor = (
        ["sqlite3", str(settings.database_path), VERSION_QUERY]
        if settings.is_sqlite
        else ["psql", "-X", "-Atc", VERSION_QUERY, _libpq_url(settings)]
    )
    argvs = {
        "llm-proxy-db migrate status --json": [str(BIN / "llm-proxy"), "migrate", "status", "--json"],
        "llm-proxy-db setup": [str(BIN / "llm-proxy"), "setup"],
        "alembic current": [str(BIN / "alembic"), "-c", str(REPO / "alembic.ini"), "current"],
        "client floor": floor,
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    contenders: dict[str, Callable[[], Run]] = {
        name: (lambda argv=argv: run_process(argv, env, cwd=str(REPO))) for name, argv in argvs.items()
    }
    return side_by_side(contenders, rounds, warmup)


def in_process(settings: Settings, rounds: int) -> tuple[str, dict[str, Samples]]:
    """The library's startup check per call against a bare driver connect-and-select."""
    name, check = startup_function()
    bare = _bare_sqlite if settings.is_sqlite else _bare_postgres(settings)
    contenders = {
        name: lambda: timed(lambda: check(settings)),
        "bare connect-and-select": lambda: timed(lambda: bare(settings)),
    }
    return name, side_by_side(contenders, rounds, warmup=3)


def startup_function() -> tuple[str, Callable[[Settings], object]]:
    """``llm_proxy_db.startup.auto_upgrade`` once it exists, else ``commands.status``."""
    try:
        startup = importlib.import_module("llm_proxy_db.startup")
        return "startup.auto_upgrade", startup.auto_upgrade
    except (ImportError, AttributeError):
        return "commands.status", commands.status


def _bare_sqlite(settings: Settings) -> list[str]:
    connection = sqlite3.connect(settings.database_path)  # type: ignore[arg-type]
    try:
        return [row[0] for row in connection.execute(VERSION_QUERY)]
    finally:
        connection.close()


def _bare_postgres(settings: Settings) -> Callable[[Settings], list[str]]:
    import psycopg

    url = _libpq_url(settings)

    def read(_: Settings) -> list[str]:
        with psycopg.connect(url, autocommit=True) as connection:
            return [row[0] for row in connection.execute(VERSION_QUERY)]

    return read


def _libpq_url(settings: Settings) -> str:
    return settings.sqlalchemy_url().set(drivername="postgresql").render_as_string(hide_password=False)
