"""MySQL 8 and MariaDB (``DB_DRIVER=mysql``): configuration, lock, fast read, dumps, scratch databases.

The driver is PyMySQL (pure Python, see docs/tool-selection.md), reached through
SQLAlchemy's ``mysql+pymysql`` dialect.  Operators copy the service's ``DATABASE_URL``,
which for MySQL is the Go driver's DSN, not a URL::

    user:password@tcp(host:3306)/dbname?parseTime=true&tls=true&loc=UTC
    user:password@unix(/run/mysqld/mysqld.sock)/dbname

Both that form and ``mysql://`` / ``mariadb://`` URLs are accepted.  Options that only
change how the Go driver decodes values (``parseTime``, ``loc``, ...) do not apply here and
are ignored; ``tls``, ``charset`` and ``timeout`` are translated.  Passwords are kept in
the URL object only, which masks them whenever it is shown.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from llm_proxy_db.errors import BackupError, ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection

    from llm_proxy_db.fingerprint import Fingerprint
    from llm_proxy_db.settings import Settings

DRIVER = "mysql"
SQLALCHEMY_NAME = "mysql"
SQLALCHEMY_DRIVER = "mysql+pymysql"
URL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
DEFAULT_TCP_ADDRESS = "127.0.0.1:3306"
DEFAULT_UNIX_SOCKET = "/tmp/mysql.sock"
DSN_EXAMPLE = "user:password@tcp(host:3306)/dbname?parseTime=true"

# Our own lock (named per database: GET_LOCK names are server-wide), and the service's
# (server-wide, its own choice): holding both makes its replicas' goose runners wait.
LOCK_NAME = "llm-proxy-db-migrations"
SERVICE_LOCK_NAME = "llm-proxy-migrations"

# Which goose MySQL versions an Alembic revision corresponds to lives with the other
# dialects' in :data:`llm_proxy_db.goose.GOOSE_VERSIONS` (0006 -> 1-4, 0007 -> 1-5).
LATEST_GOOSE_VERSION = 5
# Which goose MySQL version produced each known state's shape (adoption checks that the
# goose table agrees): states with openai_api_key never existed on MySQL.
STATE_GOOSE_VERSIONS: Mapping[str, tuple[int, ...]] = {
    "goose-1": (), "0003": (), "0004": (), "0005": (), "0006": (4,), "0007": (5,),
}

# MySQL 8.0.16+ names the inline CHECK of goose file 1 audit_events_chk_1 and goose file 5's
# MODIFY COLUMN does not drop it (reference section 3): such a database rejects denied/error.
MYSQL8_TRAP_CHECK = "audit_events_chk_1"


def mysql8_trap_fingerprint(head: Fingerprint) -> Fingerprint:
    """The head fingerprint plus the old two-value ``audit_events_chk_1`` (the MySQL 8 goose-5 shape)."""
    from dataclasses import replace

    from llm_proxy_db.fingerprint import normalise_check

    audit = head.tables["audit_events"]
    trapped = replace(
        audit,
        checks=audit.checks | {normalise_check("outcome IN ('success', 'failure')")},
        constraint_names=audit.constraint_names | {MYSQL8_TRAP_CHECK},
    )
    return replace(head, tables={**head.tables, "audit_events": trapped})


_DSN = re.compile(r"^(?:(?P<userinfo>.*)@)?(?P<net>\w+)?(?:\((?P<address>[^)]*)\))?$", re.DOTALL)
_IGNORED_OPTIONS = frozenset(
    {"parsetime", "loc", "collation", "readtimeout", "writetimeout", "allownativepasswords",
     "allowcleartextpasswords", "multistatements", "interpolateparams", "clientfoundrows",
     "columnswithalias", "rejectreadonly", "maxallowedpacket", "checkconnliveness", "time_zone",
     "sql_mode", "autocommit"}
)


def is_url(text: str) -> bool:
    """True for ``scheme://...``; anything else is read as the Go driver's DSN."""
    return "://" in text


def parse_database_url(raw: str) -> URL:
    """``DATABASE_URL`` (Go DSN or ``mysql://``/``mariadb://`` URL) as a ``mysql+pymysql`` URL."""
    text = raw.strip()
    url = _parse_url(text) if is_url(text) else _parse_dsn(text)
    if not url.database:
        raise ConfigError(
            f"database URL {url.render_as_string()!r} names no database",
            hint=f"add the database name: {DSN_EXAMPLE}",
        )
    return url


def _parse_url(text: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(_encode_userinfo(text))
    except (ArgumentError, ValueError):
        raise _malformed(text) from None
    if url.drivername not in URL_SCHEMES:
        raise ConfigError(
            f"unsupported URL scheme {url.drivername!r} for DB_DRIVER mysql in {mask_dsn(text)!r}",
            hint=f"use mysql://user:pass@host:3306/db or the service's DSN {DSN_EXAMPLE}",
        )
    query = {key: _last(value) for key, value in url.query.items()}
    return url.set(drivername=SQLALCHEMY_DRIVER, query=_driver_options(query, text))


def _parse_dsn(text: str) -> URL:
    """``[user[:password]@][net[(address)]]/dbname[?options]``, as the Go driver reads it."""
    from sqlalchemy.engine import URL

    head, slash, tail = text.rpartition("/")
    match = _DSN.match(head) if slash else None
    if match is None:
        raise _malformed(text)
    database, _, options = tail.partition("?")
    user, _, password = (match.group("userinfo") or "").partition(":")
    net = (match.group("net") or "tcp").lower()
    address = match.group("address") or ""
    query = _driver_options(dict(parse_qsl(options, keep_blank_values=True)), text)
    if net == "unix":
        query["unix_socket"] = address or DEFAULT_UNIX_SOCKET
        return URL.create(SQLALCHEMY_DRIVER, user or None, password or None, "localhost", None, database, query)
    if net != "tcp":
        raise ConfigError(f"unsupported network {net!r} in {mask_dsn(text)!r}", hint="use tcp(host:port) or unix(path)")
    host, port = _host_port(address or DEFAULT_TCP_ADDRESS, text)
    return URL.create(SQLALCHEMY_DRIVER, user or None, password or None, host, port, database, query)


def _host_port(address: str, text: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":") if not address.endswith("]") else (address, "", "")
    if not colon:
        host, port = address, "3306"
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise _malformed(text) from None


def _driver_options(options: Mapping[str, str], text: str) -> dict[str, str]:
    """The Go driver's options translated for PyMySQL; those that only concern Go are dropped."""
    query: dict[str, str] = {"charset": "utf8mb4"}
    for key, value in options.items():
        lowered = key.lower()
        if lowered == "tls":
            query.update(_tls(value, text))
        elif lowered == "charset":
            query["charset"] = value.split(",")[0]
        elif lowered == "timeout":
            query["connect_timeout"] = str(max(1, round(_seconds(value, text))))
        elif lowered in _IGNORED_OPTIONS:
            continue
        else:  # a PyMySQL option given in the URL form (unix_socket, ssl_ca, ...): keep it
            query[key] = value
    return query


def _tls(value: str, text: str) -> dict[str, str]:
    setting = value.strip().lower()
    if setting in ("", "false"):
        return {}
    if setting == "true":
        return {"ssl_check_hostname": "true"}
    if setting in ("skip-verify", "preferred"):
        return {"ssl_check_hostname": "false"}
    raise ConfigError(
        f"tls={value!r} in {mask_dsn(text)!r} names a TLS configuration registered in the Go service",
        hint="use tls=true or tls=skip-verify, or the mysql:// form with ssl_ca=/path/ca.pem",
    )


def _seconds(value: str, text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value.strip())
    if match is None:
        raise ConfigError(f"timeout={value!r} in {mask_dsn(text)!r} is not a duration", hint="e.g. timeout=5s")
    factor = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2) or "s"]
    return float(match.group(1)) * factor


def _encode_userinfo(text: str) -> str:
    from urllib.parse import quote, unquote

    scheme, _, rest = text.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return text
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{quote(unquote(user), safe='')}{colon}{quote(unquote(password), safe='')}@{host}"


def _last(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else value[-1]


def _malformed(text: str) -> ConfigError:
    return ConfigError(f"malformed MySQL DATABASE_URL {mask_dsn(text)!r}", hint=f"expected {DSN_EXAMPLE}")


def mask_dsn(text: str) -> str:
    """``text`` (DSN or URL) with the password replaced by ``***``."""
    scheme, sep, rest = text.partition("://")
    body = rest if sep else text
    credentials, at, tail = body.rpartition("@")
    if not at or ":" not in credentials:
        return text
    masked = f"{credentials.split(':', 1)[0]}:***@{tail}"
    return f"{scheme}://{masked}" if sep else masked


# -- the migration lock ---------------------------------------------------------------------


def try_migration_lock(connection: Connection) -> bool:
    """Take ``GET_LOCK`` for our name and the service's, without waiting; True when both are held.

    Named locks belong to the session: the server frees them when the connection dies.
    """
    ours = lock_name(connection)
    if not _get_lock(connection, ours):
        return False
    if _get_lock(connection, SERVICE_LOCK_NAME):
        return True
    _release(connection, ours)
    return False


def try_own_lock(connection: Connection) -> bool:
    """Take our ``GET_LOCK`` (named after the database), without waiting."""
    return _get_lock(connection, lock_name(connection))


def try_service_lock(connection: Connection) -> bool:
    """Take the service's ``GET_LOCK('llm-proxy-migrations')``, without waiting; while we hold
    it, a starting replica's goose runner waits (and gives up after its 10 tries)."""
    return _get_lock(connection, SERVICE_LOCK_NAME)


def lock_name(connection: Connection) -> str:
    """Our lock's name for the database of ``connection`` (at most 64 characters, MySQL's limit)."""
    return f"{LOCK_NAME}:{connection.engine.url.database}"[:64]


def release_migration_lock(connection: Connection) -> None:
    """Release both named locks; a dead connection has released them already."""
    import sqlalchemy as sa

    if connection.closed or connection.invalidated:
        return
    try:
        connection.rollback()
        _release(connection, SERVICE_LOCK_NAME)
        _release(connection, lock_name(connection))
    except sa.exc.DBAPIError:
        pass  # the session is gone, and its locks with it


def _get_lock(connection: Connection, name: str) -> bool:
    taken = connection.exec_driver_sql("SELECT GET_LOCK(%s, 0)", (name,)).scalar() == 1
    connection.commit()  # never sit in a transaction while polling
    return taken


def _release(connection: Connection, name: str) -> None:
    connection.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (name,))
    connection.commit()


# -- the fast startup read --------------------------------------------------------------------


def connect_args(url: URL) -> dict[str, Any]:
    """PyMySQL's ``connect()`` keyword arguments for ``url`` (SQLAlchemy's own translation)."""
    from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql

    _, kwargs = MySQLDialect_pymysql().create_connect_args(url)
    return dict(kwargs)


def read_versions(settings: Settings, adopted_ok: bool) -> list[str]:
    """``alembic_version``'s rows with a bare PyMySQL connection; ``["(adopted)"]`` when adopted."""
    import pymysql

    connection = pymysql.connect(**connect_args(settings.sqlalchemy_url()))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            rows = [row[0] for row in cursor.fetchall()]
            if not adopted_ok:
                cursor.execute("SHOW TABLES LIKE 'llm_proxy_adoption'")
                if cursor.fetchone() is not None:
                    return ["(adopted)"]
            return rows
    finally:
        connection.close()


# -- backups ----------------------------------------------------------------------------------

DUMP_CLIENTS = ("mariadb-dump", "mysqldump")


def dump_client() -> str | None:
    """The first dump client on ``PATH`` (``mariadb-dump``, else ``mysqldump``), or None."""
    for name in DUMP_CLIENTS:
        found = shutil.which(name)
        if found:
            return found
    return None


def backup_command(settings: Settings, target: Path) -> tuple[list[str], dict[str, str]]:
    """A consistent dump (``--single-transaction``) into ``target``; the password goes in ``MYSQL_PWD``."""
    client = dump_client()
    if client is None:
        raise BackupError(
            "no MySQL dump client (mariadb-dump or mysqldump) is installed; cannot back up",
            hint="install the MariaDB or MySQL client tools, or pass --no-backup after your own backup",
        )
    url = settings.sqlalchemy_url()
    args = [client, "--single-transaction", "--routines", "--triggers", f"--result-file={target}"]
    args += _client_connection_args(url)
    env = {"MYSQL_PWD": str(url.password)} if url.password else {}
    return [*args, str(url.database)], env


def _client_connection_args(url: URL) -> list[str]:
    args = [f"--user={url.username}"] if url.username else []
    socket = url.query.get("unix_socket")
    if socket:
        return [*args, f"--socket={_last(socket)}"]
    return [*args, f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 3306}", "--protocol=TCP"]


def run_backup(settings: Settings, target: Path) -> Path:
    """Dump the database into ``target`` (which must not exist); failures become BackupError."""
    import subprocess

    from llm_proxy_db.files import written_then_renamed

    if target.exists():
        raise BackupError(f"{target} already exists; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    # The dump holds the projects' API keys: written under a private temporary name (mode
    # 0600, umask 077 for the client) and renamed only once the client succeeded.
    with written_then_renamed(target, None) as temporary:
        command, extra_env = backup_command(settings, temporary)
        completed = subprocess.run(
            command, env={**os.environ, **extra_env}, capture_output=True, text=True, check=False, umask=0o077
        )
        if completed.returncode != 0:
            reason = (completed.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise BackupError(f"{Path(command[0]).name} on {settings.describe()} failed: {reason}")
    return target


def load_dump(settings: Settings, dump: Path) -> None:
    """Load a dump written by :func:`run_backup` into the (empty) database of ``settings``."""
    import subprocess

    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise BackupError("no MySQL client (mariadb or mysql) is installed; cannot load the dump")
    url = settings.sqlalchemy_url()
    env = {**os.environ, **({"MYSQL_PWD": str(url.password)} if url.password else {})}
    with dump.open("rb") as source:
        completed = subprocess.run(
            [client, *_client_connection_args(url), str(url.database)], stdin=source, env=env,
            capture_output=True, check=False,
        )
    if completed.returncode != 0:
        reason = (completed.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[-1]
        raise BackupError(f"{Path(client).name} could not load {dump} into {settings.describe()}: {reason}")


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A scratch database on the same server holding a consistent copy of ``settings``' database."""
    dump = run_backup(settings, work_dir / "rehearsal.sql")
    with scratch_database(settings.sqlalchemy_url(), "rehearsal") as copy:
        load_dump(copy, dump)
        yield copy


# -- scratch databases ------------------------------------------------------------------------


@contextmanager
def scratch_database(server: URL, purpose: str = "scratch") -> Iterator[Settings]:
    """A new, empty database on the server of ``server``, dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from llm_proxy_db.settings import Settings

    name = f"{server.database or 'llmproxy'}_{purpose}_{uuid.uuid4().hex[:8]}"[-64:]
    admin = sa.create_engine(server, poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    except sa.exc.DBAPIError as exc:
        admin.dispose()
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ConfigError(
            f"cannot create a scratch database on {server.render_as_string(hide_password=True)}: {reason}",
            hint="the user needs the CREATE and DROP privileges on the server",
        ) from None
    try:
        yield Settings(driver=DRIVER, database_url=server.set(database=name))
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()
