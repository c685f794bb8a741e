"""PostgreSQL (``DB_DRIVER=postgres``): configuration, engine, lock, fast read, dumps, scratch databases.

The driver is psycopg 3 (``postgresql+psycopg``).  Backups are ``pg_dump --format=custom``
files loaded back with ``pg_restore``; the password never appears on a command line (it
travels in ``PGPASSWORD``) nor in a message.  The migration lock is a session-level advisory
lock on the migrating connection, then the service's own goose key.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from llm_proxy_db.config.masking import mask_connection_string
from llm_proxy_db.dialects import scratch, server_backup
from llm_proxy_db.dialects.scratch import ScratchRecipe
from llm_proxy_db.dialects.server_backup import default_backup_directory, needs_backup  # noqa: F401 (the protocol's, shared by the servers)
from llm_proxy_db.errors import BackupError, ConfigError
from llm_proxy_db.quick_status import ADOPTION_TABLE, VERSION_QUERY

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import URL, Connection, Engine

    from llm_proxy_db.adoption.known_states import KnownState
    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.dialects.server_backup import DumpInfo
    from llm_proxy_db.migration.executor import Progress
    from llm_proxy_db.schema.fingerprint import Fingerprint

DRIVER = "postgres"
SQLALCHEMY_NAME = "postgresql"
SQLALCHEMY_DRIVER = "postgresql+psycopg"
URL_SCHEMES = ("postgres", "postgresql", "postgresql+psycopg")
URL_EXAMPLE = "postgres://user@host:5432/db"
OFFLINE_URL = "postgresql://offline/offline"

# Printed before a ``--sql`` script: psql goes on after a failed statement by default, and a
# statement that commits on its own (outside BEGIN/COMMIT) must never be followed by the
# version update of a revision it did not finish.
OFFLINE_SCRIPT_PREAMBLE = "-- for psql: stop at the first error\n\\set ON_ERROR_STOP on\n"

# A fixed 64-bit key for pg_advisory_lock: "llm-proxy-db migrations" (advisory locks are
# scoped to one database, so every llm-proxy database has its own).
ADVISORY_LOCK_KEY = 0x6C6C6D70726F7879  # b"llmproxy"
# The service's own migration lock (reference section 3): it tries
# pg_try_advisory_lock(3141592653) 10 times 100 ms apart at every start.
SERVICE_LOCK_KEY = 3141592653

# The service's goose bookkeeping on PostgreSQL: our revision -> the highest goose version
# whose effect that revision's schema has (versions 1..N), and goose's own CREATE TABLE.
GOOSE_TABLE = "goose_db_version"
GOOSE_VERSIONS: Mapping[str, int] | None = {
    "0001": 0, "0002": 0, "0003": 2, "0004": 3, "0005": 4, "0006": 5, "0007": 6,
}
GOOSE_TABLE_DDL: str | None = (
    f"CREATE TABLE {GOOSE_TABLE} (id serial NOT NULL, version_id bigint NOT NULL, "
    "is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))"
)

_ADOPTED = f"SELECT 1 WHERE to_regclass('{ADOPTION_TABLE}') IS NOT NULL"


def offline_settings() -> Settings:
    """Settings for offline (``--sql``) scripts, which connect to nothing."""
    from llm_proxy_db.config.settings import Settings

    return Settings(driver=DRIVER, database_url=parse_database_url(OFFLINE_URL))


# -- configuration ----------------------------------------------------------------------------


def parse_database_url(raw_url: str) -> URL:
    """Accept ``postgres://``, ``postgresql://`` and ``postgresql+psycopg://``; use psycopg 3.

    Like the service (Go's ``net/url``), the user information ends at the *last* ``@``, so a
    password holding an unencoded ``@`` still works; a ``?password=`` parameter becomes the
    URL's password, so it is masked and passed to client tools like any other password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from llm_proxy_db.config.masking import is_key_value

    if is_key_value(raw_url):
        raise ConfigError(
            f"DATABASE_URL {mask_connection_string(raw_url)!r} is a libpq key=value connection "
            "string; PostgreSQL needs the URL form, as the service does",
            hint="use postgres://user:password@host:5432/dbname?sslmode=... (percent-encode "
            "special characters of the password)",
        )
    try:
        url = make_url(_encode_userinfo(raw_url.strip()))
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"malformed database URL {mask_connection_string(raw_url)!r}",
            hint="expected postgres://user:password@host:5432/dbname",
        ) from None
    if url.drivername not in URL_SCHEMES:
        raise ConfigError(
            f"unsupported URL scheme {url.drivername!r} in {mask_connection_string(raw_url)!r}",
            hint="use postgres://, postgresql:// or postgresql+psycopg://",
        )
    url = _password_from_query(url)
    if not url.database:
        raise ConfigError(
            f"database URL {url.render_as_string()!r} names no database",
            hint="add the database name: postgres://user@host:5432/dbname",
        )
    return url.set(drivername=SQLALCHEMY_DRIVER)


def _encode_userinfo(text: str) -> str:
    """Percent-encode user and password when the user information holds a raw ``@``."""
    scheme, sep, rest = text.partition("://")
    userinfo, _, host = rest.rpartition("@")
    if not sep or "@" not in userinfo:
        return text
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{quote(unquote(user), safe='')}{colon}{quote(unquote(password), safe='')}@{host}"


def _password_from_query(url: URL) -> URL:
    if "password" not in url.query:
        return url
    password = url.query["password"]
    query = {key: value for key, value in url.query.items() if key != "password"}
    return url.set(password=password if isinstance(password, str) else password[-1], query=query)


def goose_offline_sql(wanted: int) -> list[str]:
    """Goose versions 1..``wanted`` recorded by statements that need no reading (``--sql``)."""
    trim = (
        f"DELETE FROM {GOOSE_TABLE} WHERE version_id > 0 "
        f"AND (version_id > {wanted} OR is_applied = false)"
    )
    if wanted == 0:  # trimmed, and dropped when only goose's seed row is left (as sync does)
        drop = (
            f"IF NOT EXISTS (SELECT 1 FROM {GOOSE_TABLE} WHERE version_id > 0) "
            f"THEN DROP TABLE {GOOSE_TABLE}; END IF;"
        )
        return [f"DO $$ BEGIN IF to_regclass('{GOOSE_TABLE}') IS NOT NULL THEN {trim}; {drop} END IF; END $$"]
    assert GOOSE_TABLE_DDL is not None
    return [
        GOOSE_TABLE_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1),
        f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) SELECT 0, true "
        f"WHERE NOT EXISTS (SELECT 1 FROM {GOOSE_TABLE} WHERE version_id = 0)",
        trim,
        f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) SELECT v, true "
        f"FROM generate_series(1, {wanted}) AS v WHERE NOT EXISTS "
        f"(SELECT 1 FROM {GOOSE_TABLE} g WHERE g.version_id = v) ORDER BY v",
    ]

# -- how revisions run -----------------------------------------------------------------------

# How revisions run here: one transaction per revision (DDL included); DDL waits for a lock
# at most lock_timeout and a revision that lost the race is tried again (pg_online); a dump
# only before a downgrade allowed to lose data.
TRANSACTIONAL_DDL = True
FOREIGN_KEYS_OFF_WHILE_MIGRATING = False
BATCH_ALTER = False
LOCK_TIMEOUT_RETRIES = True
BACKUP_BEFORE_EVERY_CHANGE = False


def partly_applied(connection: Connection, revision: str) -> str | None:
    """What of ``revision`` is committed already when a run stopped between the steps it
    commits on their own (0003-0005, 0007: :mod:`llm_proxy_db.migration.pg_online`), else None.

    Each such revision module says it with ``postgresql_started(connection)``.
    """
    from llm_proxy_db.migration.revisions import script_directory

    module = script_directory().get_revision(revision).module
    started = getattr(module, "postgresql_started", None)
    done = started(connection) if started is not None else []
    if not done:
        return None
    return f"{revision} partly applied: {'; '.join(done)}; its version is not recorded yet"

# -- the service's history here ---------------------------------------------------------------

# The service's starts leave no schema artefacts here (goose runs its files, nothing else).
SERVICE_START_ARTEFACTS = False


def new_token_id_sql() -> str | None:
    """None: ``tokens.id`` is never NULL here (:mod:`llm_proxy_db.service.token_ids`)."""
    return None

# -- fingerprint quirks -----------------------------------------------------------------------

NAMED_CONSTRAINTS = True
INDEX_REFLECTION_OPTIONS: Mapping[str, Any] = {}
TRIGGERS_SQL = (
    "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
)


def reflect_checks(connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    """SQLAlchemy's reflection of CHECK constraints is complete here: None."""
    del connection, tables
    return None

# -- connecting -------------------------------------------------------------------------------


def head_metadata() -> MetaData:
    """PostgreSQL's head schema (named constraints, NOT NULL keys)."""
    from llm_proxy_db.schema.head import shared_head_metadata

    return shared_head_metadata(server=True)


def database_exists(settings: Settings) -> bool:
    """A server database is taken to exist: connecting says otherwise, with a clear error."""
    del settings
    return True


def create_engine(settings: Settings, *, foreign_keys: bool = True, create: bool = True) -> Engine:
    """An engine without a pool (each command opens what it needs, once)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    del foreign_keys, create  # always on; a server database is never created here
    return sa.create_engine(settings.sqlalchemy_url(), poolclass=NullPool)


# -- the migration lock -----------------------------------------------------------------------


@contextmanager
def migration_lock(
    settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """Our key, then the service's: always in this order, so two migrators cannot deadlock
    (the service only tries its key, it never waits while holding one).  Both belong to
    ``connection``: run the migrations on it."""
    import time

    from llm_proxy_db.safety.locking import SERVICE_WAITING, WAITING

    assert connection is not None, "the PostgreSQL lock is held by the migrating connection"
    started = time.monotonic()
    with _one_advisory_lock(settings, connection, ADVISORY_LOCK_KEY, timeout, progress, WAITING):
        left = max(timeout - (time.monotonic() - started), 0.0)
        with _one_advisory_lock(settings, connection, SERVICE_LOCK_KEY, left, progress, SERVICE_WAITING):
            yield time.monotonic() - started


@contextmanager
def _one_advisory_lock(
    settings: Settings,
    connection: Connection,
    key: int,
    timeout: float,
    progress: Progress | None,
    waiting: str,
) -> Iterator[None]:
    from llm_proxy_db.safety.locking import poll

    def attempt() -> bool:
        taken = bool(connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
        connection.commit()  # never sit idle in a transaction while polling
        return taken

    poll(attempt, timeout, progress, settings, f"advisory lock {key}", waiting)
    try:
        yield
    finally:
        _advisory_unlock(connection, key)


def _advisory_unlock(connection: Connection, key: int) -> None:
    """Release the lock; a dead connection has released it already."""
    import sqlalchemy as sa

    if connection.closed or connection.invalidated:
        return
    try:
        connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
        connection.commit()
    except sa.exc.DBAPIError:
        pass  # the session is gone, and its locks with it; closing the connection finishes it


# -- the fast startup read --------------------------------------------------------------------


def read_versions(settings: Settings, adopted_ok: bool) -> list[str]:
    """``alembic_version``'s rows with a bare psycopg connection; ``["(adopted)"]`` when adopted."""
    url = settings.sqlalchemy_url().set(drivername="postgresql")
    return read_versions_at(url.render_as_string(hide_password=False), adopted_ok)


def read_versions_at(libpq_url: str, adopted_ok: bool) -> list[str]:
    """:func:`read_versions` for a libpq URL (no SQLAlchemy needed to build it)."""
    import psycopg  # only PostgreSQL users pay for importing it

    with psycopg.connect(libpq_url, autocommit=True) as connection:
        rows = [row[0] for row in connection.execute(VERSION_QUERY)]
        if not adopted_ok and connection.execute(_ADOPTED).fetchone() is not None:
            return ["(adopted)"]
        return rows


# -- backups and restores (the shared steps: dialects/server_backup) -------------------------

DUMP_DESCRIPTION = "pg_dump custom-format file (llm-proxy db backup on PostgreSQL)"
RESTORE_TOOLS: tuple[tuple[str, ...], ...] = (("pg_dump",), ("pg_restore",), ("psql",))
INSTALL_HINT = "install the PostgreSQL client tools (of the server's major version or newer)"


backup, take_backup, restore = server_backup.operations(__name__)


def backup_suffix() -> str:
    """The file name suffix of this dialect's backups."""
    return "dump"


def dump(settings: Settings, target: Path) -> Path:
    """The dialect's backup: :func:`pg_dump` into ``target``."""
    return pg_dump(settings, target)


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A scratch database on the same server holding a consistent copy of ``settings``' database."""
    dump = pg_dump(settings, work_dir / "rehearsal.dump")
    with scratch_database(settings.sqlalchemy_url(), "rehearsal") as copy:
        pg_restore(copy, dump)
        yield copy


def pg_dump(settings: Settings, target: Path) -> Path:
    """``pg_dump --format=custom`` of the database into ``target`` (which must not exist).

    The dump (it holds the projects' API keys) is written under a temporary name created
    with mode 0600, and renamed when ``pg_dump`` succeeded; a failure or a signal removes it.
    """
    from llm_proxy_db.safety.files import written_then_renamed

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


# A forced restore drops the old contents in the load's own transaction (server_backup).
LOAD_REPLACES = True

# Drops every object of the current schema that is not an extension's (the schema itself, its
# owner and grants stay): relations, routines, then types; CASCADE takes what depends on them.
_DROP_SCHEMA_CONTENTS = r"""DO $llm_proxy_drop$
DECLARE
  obj record;
BEGIN
  FOR obj IN
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
             WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind,
           format('%I.%I', n.nspname, c.relname) AS name, 1 AS pass
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                       AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
           format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)), 2
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = current_schema()
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                       AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
           format('%I.%I', n.nspname, t.typname), 3
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = current_schema() AND t.typtype IN ('c', 'd', 'e', 'r')
       AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                       AND d.objid = t.oid AND d.deptype = 'e')
    ORDER BY pass
  LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE', obj.kind, obj.name);
  END LOOP;
END
$llm_proxy_drop$;
"""


def load_dump(settings: Settings, dump: Path) -> None:
    """Replace the contents of the database's schema with the dump, atomically.

    ``pg_restore --no-owner --no-privileges -f -`` turns the dump into SQL (no connection; a
    dump's owners and grants may name roles this server lacks), which ``psql -v
    ON_ERROR_STOP=1`` runs after the drop of every object of the schema, all in one
    transaction committed only once ``pg_restore`` has written the whole dump: any failure
    (or this process killed) leaves the database exactly as it was.
    """
    import shutil
    import subprocess
    import tempfile

    from llm_proxy_db.dialects.client_tools import find_tool

    restore_exe = find_tool(["pg_restore"], INSTALL_HINT)
    psql_exe = find_tool(["psql"], INSTALL_HINT)
    env, dbname = _client_env(settings)
    what = f"restore on {settings.describe()}"
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        psql = subprocess.Popen(
            [psql_exe, "--no-psqlrc", "--no-password", "--quiet", "-v", "ON_ERROR_STOP=1", "--file=-",
             f"--dbname={dbname}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env,
        )
        source = subprocess.Popen(
            [restore_exe, "--no-owner", "--no-privileges", "--exit-on-error", "--file=-", str(dump)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=restore_err, env=env,
        )
        assert psql.stdin is not None and source.stdout is not None
        try:
            try:
                psql.stdin.write(b"BEGIN;\n" + _DROP_SCHEMA_CONTENTS.encode())
                shutil.copyfileobj(source.stdout, psql.stdin)
                if source.wait() == 0:  # only a complete script is committed
                    psql.stdin.write(b"COMMIT;\n")
            except BrokenPipeError:  # psql stopped at an error: its stderr says which
                pass
            finally:
                with contextlib.suppress(BrokenPipeError):
                    psql.stdin.close()
        finally:
            if source.poll() is None:
                source.kill()
            source.wait()
            psql.wait()
        if source.returncode == 0 and psql.returncode == 0:
            return
        restore_err.seek(0)
        psql_err.seek(0)
        errors = psql_err.read().decode(errors="replace") + restore_err.read().decode(errors="replace")
        reason = _error_line(errors, settings.sqlalchemy_url().password)
        raise BackupError(f"{what} failed, nothing was changed: {reason}")


def _error_line(stderr: str, password: object) -> str:
    """The first error line of a client tool's ``stderr`` (``ERROR:``, ``FATAL:``,
    ``pg_restore: error:``), else its last line; the password masked."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    found = next(
        (line[line.index(mark):] for line in lines for mark in ("ERROR:", "FATAL:", "pg_restore: error:")
         if mark in line),
        lines[-1] if lines else "the load stopped",
    )
    found = " ".join(found.split())
    return found.replace(str(password), "***") if password else found


_TOC_TABLE = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) ")
_TOC_DBNAME = re.compile(r"^;\s+dbname: (.*)$")


def inspect_dump(path: Path) -> DumpInfo:
    """What the dump holds, read with ``pg_restore --list`` (its table of contents) and the
    ``alembic_version`` rows it would load; BackupError for anything but a complete pg_dump
    archive (it is read to its end once)."""
    from llm_proxy_db.dialects.client_tools import find_tool
    from llm_proxy_db.dialects.client_tools import run_tool as run
    from llm_proxy_db.dialects.server_backup import DumpInfo

    executable = find_tool(["pg_restore"], INSTALL_HINT)
    toc = run(executable, ["--list", str(path)], password=None, what=f"pg_restore --list {path}")
    # Reading the whole archive once (into nothing) finds a dump cut short.
    run(executable, [f"--file={os.devnull}", str(path)], password=None, what=f"pg_restore {path}")
    database = next((m.group(1).strip() for m in map(_TOC_DBNAME.match, toc.splitlines()) if m), None)
    tables = frozenset(m.group(2) for m in map(_TOC_TABLE.match, toc.splitlines()) if m)
    revision = None
    if "alembic_version" in tables:
        data = run(
            executable, ["--data-only", "--table=alembic_version", "--file=-", str(path)],
            password=None, what=f"pg_restore {path}",
        )
        revision = _copied_rows(data)
    return DumpInfo(database, tables, revision)


def _copied_rows(script: str) -> str | None:
    """The first row of the ``COPY ... FROM stdin`` block of a one-table script, if any."""
    lines = script.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("COPY ")), None)
    if start is None or start + 1 >= len(lines) or lines[start + 1] == "\\.":
        return None
    return lines[start + 1].strip()


def drop_everything(connection: Connection) -> None:
    """Drop every table and view of the connection's schema (a forced restore's first step)."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    for kind, names in (("VIEW", inspector.get_view_names()), ("TABLE", inspector.get_table_names())):
        if names:
            quoted = ", ".join('"' + name.replace('"', '""') + '"' for name in names)
            connection.exec_driver_sql(f"DROP {kind} IF EXISTS {quoted} CASCADE")
    connection.commit()


def run_tool(tool: str, settings: Settings, args: list[str]) -> str:
    """Run a PostgreSQL client tool against ``settings`` (password in ``PGPASSWORD``)."""
    from llm_proxy_db.dialects import client_tools

    hint = f"{INSTALL_HINT}, or pass --no-backup after your own backup" if tool == "pg_dump" else INSTALL_HINT
    executable = client_tools.find_tool([tool], hint)
    url = settings.sqlalchemy_url()
    password = ("PGPASSWORD", str(url.password)) if url.password else None
    dbname = _client_env(settings)[1]
    return client_tools.run_tool(
        executable, [*args, f"--dbname={dbname}"], password=password, what=f"{tool} on {settings.describe()}"
    )


def _client_env(settings: Settings) -> tuple[dict[str, str], str]:
    """The environment (password in ``PGPASSWORD``, only there) and the password-less
    ``--dbname`` URL for a client tool connecting to ``settings``."""
    from sqlalchemy.engine import URL as SaURL

    url = settings.sqlalchemy_url()
    env = dict(os.environ)  # a PGPASSWORD of the environment serves a URL without a password
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    # URL.set(password=None) keeps the password (None means "unchanged"): build it without one.
    bare = SaURL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    return env, bare.render_as_string(hide_password=False)


SCRATCH = ScratchRecipe(
    driver=DRIVER,
    create_sql='CREATE DATABASE "{name}"',
    drop_sql='DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',  # PostgreSQL 13+
    max_name_length=63,
    privilege_hint="the user needs the CREATEDB privilege",
    isolation_level="AUTOCOMMIT",
)


def scratch_database(server: URL, purpose: str = "scratch") -> AbstractContextManager[Settings]:
    """A new, empty database on the server of ``server``, dropped afterwards (even if in use)."""
    return scratch.scratch_database(SCRATCH, server, purpose)


def schema_cookie(connection: Connection) -> object | None:
    """None: no cheap marker of schema changes, so the schema is read again."""
    del connection
    return None


def server_family(connection: Connection) -> str:
    """``postgresql-<major>``: catalog renderings (defaults, CHECKs) may change between majors."""
    version = connection.dialect.server_version_info or (0,)
    return f"postgresql-{version[0]}"


@contextmanager
def scratch_connection(connection: Connection) -> Iterator[Connection]:
    """A new connection to the same database whose ``search_path`` is a new schema, in a
    transaction that is always rolled back (PostgreSQL's DDL is transactional: nothing stays)."""
    import sqlalchemy as sa

    schema = f"llm_proxy_scratch_{uuid.uuid4().hex[:12]}"
    with connection.engine.connect() as scratch:
        transaction = scratch.begin()
        try:
            scratch.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            scratch.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
            yield scratch
        except sa.exc.DBAPIError as exc:
            text = str(exc.orig or exc).strip()
            raise ConfigError(
                text.splitlines()[0] if text else type(exc).__name__,
                hint="the database user needs the CREATE privilege on the database for a scratch "
                "schema that is always rolled back (GRANT CREATE ON DATABASE ... TO ...)",
            ) from None
        finally:
            transaction.rollback()


# -- the service's history on PostgreSQL ------------------------------------------------------


def adjust_known_states(states: list[KnownState], prints: Mapping[str, Fingerprint]) -> list[KnownState]:
    """Goose 1-4 databases a later service release created with ``api_key`` from the start."""
    from llm_proxy_db.adoption.known_states import with_api_key_variants

    del prints
    return with_api_key_variants(states)
