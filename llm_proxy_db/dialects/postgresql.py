"""``pg_dump`` and ``pg_restore`` for PostgreSQL databases, and throw-away scratch databases.

The password never appears on a command line (it travels in ``PGPASSWORD``) nor in a message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from llm_proxy_db.errors import BackupError, ConfigError
from llm_proxy_db.files import written_then_renamed
from llm_proxy_db.settings import Settings


def pg_dump(settings: Settings, target: Path) -> Path:
    """``pg_dump --format=custom`` of the database into ``target`` (which must not exist).

    The dump (it holds the projects' API keys) is written under a temporary name created
    with mode 0600, and renamed when ``pg_dump`` succeeded; a failure or a signal removes it.
    """
    if target.exists():
        raise BackupError(f"{target} already exists; choose another --out")
    try:
        with written_then_renamed(target, None) as temporary:
            run_tool("pg_dump", settings, ["--format=custom", f"--file={temporary}"])
    except OSError as exc:
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"cannot write the dump {target}: {exc.strerror or exc}") from None
    return target


def pg_restore(settings: Settings, dump: Path) -> None:
    """Load a ``pg_dump --format=custom`` file into the (empty) database of ``settings``."""
    run_tool("pg_restore", settings, ["--no-owner", "--exit-on-error", str(dump)])


def run_tool(tool: str, settings: Settings, args: list[str]) -> None:
    """Run a PostgreSQL client tool against ``settings``; failures become :class:`BackupError`."""
    executable = shutil.which(tool)
    if executable is None:
        raise BackupError(f"{tool} is not installed", hint="install the PostgreSQL client tools")
    url = settings.sqlalchemy_url()
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    dbname = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    completed = subprocess.run(
        [executable, *args, f"--dbname={dbname}"], env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        reason = (completed.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise BackupError(f"{tool} on {settings.describe()} failed: {reason}")


@contextmanager
def scratch_database(settings: Settings, purpose: str) -> Iterator[Settings]:
    """A new, empty database on the same server, dropped afterwards (PostgreSQL 13+)."""
    url = settings.sqlalchemy_url()
    name = f"{url.database}_{purpose}_{uuid.uuid4().hex[:8]}"[-63:]
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.DBAPIError as exc:
        admin.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ConfigError(
            f"cannot create a scratch database on {settings.describe()}: {reason}",
            hint="the user needs the CREATEDB privilege",
        ) from None
    try:
        yield Settings(driver="postgres", database_url=url.set(database=name))
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
