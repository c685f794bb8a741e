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

import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from llm_proxy_db.config.masking import mask_connection_string
from llm_proxy_db.dialects import scratch, server_backup
from llm_proxy_db.dialects.scratch import ScratchRecipe
from llm_proxy_db.dialects.server_backup import default_backup_directory, needs_backup  # noqa: F401 (the protocol's, shared by the servers)
from llm_proxy_db.errors import BackupError, ConfigError

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import URL, Connection, Engine

    from llm_proxy_db.adoption.known_states import KnownState
    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.dialects import mysql_topology
    from llm_proxy_db.dialects.server_backup import DumpInfo
    from llm_proxy_db.migration.executor import Progress
    from llm_proxy_db.schema.fingerprint import Fingerprint

DRIVER = "mysql"
SQLALCHEMY_NAME = "mysql"
SQLALCHEMY_DRIVER = "mysql+pymysql"
URL_SCHEMES = ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql")
DEFAULT_TCP_ADDRESS = "127.0.0.1:3306"
DEFAULT_UNIX_SOCKET = "/tmp/mysql.sock"
DSN_EXAMPLE = "user:password@tcp(host:3306)/dbname?parseTime=true"

# Printed before a ``--sql`` script: nothing, the mariadb / mysql client stops at the first
# error unless it is given --force.
OFFLINE_SCRIPT_PREAMBLE = ""

# Our own lock (named per database: GET_LOCK names are server-wide), and the service's
# (server-wide, its own choice): holding both makes its replicas' goose runners wait.
LOCK_NAME = "llm-proxy-db-migrations"
SERVICE_LOCK_NAME = "llm-proxy-migrations"

OFFLINE_URL = "mysql://offline@localhost/offline"

# The service's goose bookkeeping on MySQL: our revision -> the highest goose version whose
# effect that revision's schema has (versions 1..N), and goose's own CREATE TABLE.  MySQL's
# goose file 1 already says api_key: no revision below 0006 equals a goose version.
GOOSE_TABLE = "goose_db_version"
GOOSE_VERSIONS: Mapping[str, int] | None = {
    "0001": 0, "0002": 0, "0003": 0, "0004": 0, "0005": 0, "0006": 4, "0007": 5,
}
GOOSE_TABLE_DDL: str | None = (
    f"CREATE TABLE {GOOSE_TABLE} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
    "version_id BIGINT NOT NULL, is_applied BOOLEAN NOT NULL, "
    "tstamp TIMESTAMP NULL DEFAULT now(), PRIMARY KEY (id))"
)
LATEST_GOOSE_VERSION = 5
# Which goose MySQL version produced each known state's shape (adoption checks that the
# goose table agrees): states with openai_api_key never existed on MySQL.
STATE_GOOSE_VERSIONS: Mapping[str, tuple[int, ...]] = {
    "goose-1": (), "0003": (), "0004": (), "0005": (), "0006": (4,), "0007": (5,),
}

# MySQL 8.0.16+ names the inline CHECK of goose file 1 audit_events_chk_1 and goose file 5's
# MODIFY COLUMN does not drop it (reference section 3): such a database rejects denied/error.
MYSQL8_TRAP_CHECK = "audit_events_chk_1"


MYSQL8_TRAP_DESCRIPTION = (
    "goose MySQL version 5 as MySQL 8 leaves it: the old two-value CHECK audit_events_chk_1 "
    "beside the new one (denied/error events rejected); revision 0007 drops it (a fix)"
)


def adjust_known_states(states: list[KnownState], prints: Mapping[str, Fingerprint]) -> list[KnownState]:
    """MySQL's goose file 1 already says api_key; goose MySQL numbers its versions differently;
    and MySQL 8 leaves goose 5 with a second CHECK (the trap state)."""
    from dataclasses import replace

    from llm_proxy_db.adoption.known_states import KnownState, with_api_key_variants

    states = [
        replace(state, goose_versions=STATE_GOOSE_VERSIONS.get(state.name, state.goose_versions))
        for state in with_api_key_variants(states)
    ]
    trap = mysql8_trap_fingerprint(prints["0007"])
    return [*states, KnownState("goose-5-mysql8", "0006", MYSQL8_TRAP_DESCRIPTION, trap, (5,))]


def mysql8_trap_fingerprint(head: Fingerprint) -> Fingerprint:
    """The head fingerprint plus the old two-value ``audit_events_chk_1`` (the MySQL 8 goose-5 shape)."""
    from dataclasses import replace

    from llm_proxy_db.schema.fingerprint import normalise_check

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

# PyMySQL connection options that may be given in the URL (SQLAlchemy turns ``ssl_*`` into
# PyMySQL's ``ssl`` argument).  Any other option named like a variable is, for the Go driver, a
# server system variable it sets on the service's sessions (``wait_timeout=100``): a valid
# service DSN may carry it, so it is accepted and not applied to the migration's session, like
# ``sql_mode`` and ``time_zone`` above; an option that cannot be a variable name is refused.
_SYSTEM_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PYMYSQL_OPTIONS = frozenset(
    {"unix_socket", "connect_timeout", "read_timeout", "write_timeout", "init_command", "local_infile",
     "program_name", "bind_address", "compress", "client_flag", "read_default_file", "read_default_group",
     "ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_check_hostname",
     "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled"}
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
        elif key in _PYMYSQL_OPTIONS:  # a PyMySQL option given in the URL form: keep it
            query[key] = value
        elif _SYSTEM_VARIABLE.fullmatch(key):
            continue  # the Go driver sets it on the service's sessions; migrations use the server's
        else:
            raise ConfigError(
                f"malformed option {key!r} in DATABASE_URL {mask_dsn(text)!r}",
                hint="options are the Go driver's (parseTime, tls, timeout, ...), server system variables "
                "(wait_timeout=100), or PyMySQL's (ssl_ca, unix_socket, connect_timeout, ...)",
            )
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
        return mask_connection_string(text)
    masked = f"{credentials.split(':', 1)[0]}:***@{tail}"
    return f"{scheme}://{masked}" if sep else masked


def offline_settings() -> Settings:
    """Settings for offline (``--sql``) scripts, which connect to nothing."""
    from llm_proxy_db.config.settings import Settings

    return Settings(driver=DRIVER, database_url=parse_database_url(OFFLINE_URL))


def goose_offline_sql(wanted: int) -> list[str]:
    """Goose versions 1..``wanted`` recorded by statements that need no reading (``--sql``).

    No ``DO`` blocks, no ``generate_series``; below the first goose version nothing is
    written: without conditional DDL a script cannot trim a table that may not exist (run
    online to keep goose in step there).
    """
    if wanted == 0:
        return []
    assert GOOSE_TABLE_DDL is not None
    missing = f"NOT EXISTS (SELECT 1 FROM {GOOSE_TABLE} g WHERE g.version_id = {{v}})"
    return [
        GOOSE_TABLE_DDL.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1),
        f"DELETE FROM {GOOSE_TABLE} WHERE version_id > 0 AND (version_id > {wanted} OR is_applied = false)",
        *(
            f"INSERT INTO {GOOSE_TABLE} (version_id, is_applied) SELECT {v}, true FROM DUAL "
            f"WHERE {missing.format(v=v)}"
            for v in range(0, wanted + 1)
        ),
    ]

# -- how revisions run -----------------------------------------------------------------------

# How revisions run here: every DDL statement commits on its own, so a revision that stops
# half-way is resumed step by step (mysql_ddl), not rolled back; a dump only before a
# downgrade allowed to lose data.
TRANSACTIONAL_DDL = False
FOREIGN_KEYS_OFF_WHILE_MIGRATING = False
BATCH_ALTER = False
LOCK_TIMEOUT_RETRIES = False
BACKUP_BEFORE_EVERY_CHANGE = False


def partly_applied(connection: Connection, revision: str) -> str | None:
    """How far ``revision`` got when a run stopped half-way through it (None: not started)."""
    from llm_proxy_db.dialects import mysql_ddl

    return mysql_ddl.partly_applied(connection, revision)

# -- the service's history here ---------------------------------------------------------------

# The service's starts leave no schema artefacts here (goose runs its files, nothing else).
SERVICE_START_ARTEFACTS = False


def new_token_id_sql() -> str | None:
    """None: ``tokens.id`` is never NULL here (:mod:`llm_proxy_db.service.token_ids`)."""
    return None

# -- fingerprint quirks -----------------------------------------------------------------------

NAMED_CONSTRAINTS = True
INDEX_REFLECTION_OPTIONS: Mapping[str, Any] = {}


def reflect_checks(connection: Connection, tables: list[str]) -> dict[str, list[dict[str, Any]]] | None:
    """Every table's CHECK constraints read from the server (SQLAlchemy misses MariaDB's
    column-level CHECKs)."""
    from llm_proxy_db.dialects.mysql_ddl import check_constraints

    return {name: check_constraints(connection, name) for name in tables}

# -- connecting and the migration lock --------------------------------------------------------


def head_metadata() -> MetaData:
    """MySQL's head schema (:mod:`llm_proxy_db.schema.head_mysql`)."""
    from llm_proxy_db.schema.head_mysql import mysql_head_metadata

    return mysql_head_metadata()


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


@contextmanager
def migration_lock(
    settings: Settings, connection: Connection | None, timeout: float, progress: Progress | None
) -> Iterator[float]:
    """Ours, then the service's (as on PostgreSQL), held for the body; yields the wait.

    Taken one after the other, so a wait for a starting service is reported as such.  First
    the server must take writes (:func:`refuse_unwritable`, exit 3, before any lock).  On a
    Galera cluster both names are held on every node (:mod:`.mysql_cluster_lock`: ``GET_LOCK``
    is per node) and the migrating session reads what the other nodes committed
    (``wsrep_sync_wait``), so a migrator that waited for another one sees its revisions.
    """
    import os
    import time

    from llm_proxy_db.dialects import mysql_cluster_lock, mysql_topology
    from llm_proxy_db.safety.locking import SERVICE_WAITING_SERVER_WIDE, poll

    assert connection is not None, "the MySQL lock is held by the migrating connection"
    facts = refuse_unwritable(settings, connection)
    nodes = mysql_cluster_lock.node_sessions(
        connection, facts.galera, os.environ.get(mysql_topology.GALERA_NODES_ENV), _node_opener(settings)
    )
    where = f" on {len(nodes.sessions)} Galera nodes" if nodes.cluster_wide else ""
    ours, started = lock_name(connection), time.monotonic()
    try:
        poll(lambda: mysql_cluster_lock.take_everywhere(nodes.sessions, ours), timeout, progress, settings,
             f"GET_LOCK('{ours}'){where}")
        left = max(timeout - (time.monotonic() - started), 0.0)
        service = f"GET_LOCK('{SERVICE_LOCK_NAME}'){where}"
        poll(lambda: mysql_cluster_lock.take_everywhere(nodes.sessions, SERVICE_LOCK_NAME), left, progress,
             settings, service, SERVICE_WAITING_SERVER_WIDE)
        if nodes.cluster_wide:
            connection.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
        yield time.monotonic() - started
    finally:
        for name in (SERVICE_LOCK_NAME, ours):
            mysql_cluster_lock.release_everywhere(nodes.sessions, name)
        nodes.close()


def refuse_unwritable(settings: Settings, connection: Connection) -> mysql_topology.Topology:
    """The server's topology; DatabaseConnectionError (exit 3) when no change may start through
    it: a read-only server or a replica, a Galera node not Synced in the Primary component."""
    from llm_proxy_db.dialects import mysql_topology
    from llm_proxy_db.errors import DatabaseConnectionError

    facts = mysql_topology.topology(connection)
    reason = mysql_topology.unwritable_reason(facts)
    if reason is not None:
        galera = facts.galera is not None and not facts.read_only and not facts.channels
        raise DatabaseConnectionError(
            f"{settings.describe()}: {reason}; "
            f"{'point at a Synced node' if galera else 'point at the primary'}. Nothing was locked or changed",
            hint="set DATABASE_URL to a server that takes writes (the primary, or a Synced Galera "
            "node); reads (`migrate status`, `migrate log`, `db backup`) work here",
        )
    return facts


def describe_topology(settings: Settings) -> dict[str, Any] | None:
    """What the server is part of (Galera, replication, read-only) for ``migrate status``;
    None for a lone writable server or when the facts cannot be read."""
    import sqlalchemy as sa

    from llm_proxy_db.dialects import mysql_topology

    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            return mysql_topology.topology(connection).as_dict()
    except sa.exc.DBAPIError:
        return None
    finally:
        engine.dispose()


def _node_opener(settings: Settings) -> Callable[[str, int], Connection]:
    """Opens a session on another node with the settings' user, password, database and options."""
    from dataclasses import replace

    def open_node(host: str, port: int) -> Connection:
        url = settings.sqlalchemy_url().set(host=host, port=port)
        engine = create_engine(replace(settings, database_url=url))
        return engine.connect()

    return open_node


def lock_name(connection: Connection) -> str:
    """Our lock's name for the database of ``connection`` (at most 64 characters, MySQL's limit)."""
    return f"{LOCK_NAME}:{connection.engine.url.database}"[:64]


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


# -- backups and restores (the shared steps: dialects/server_backup) -------------------------

DUMP_CLIENTS = ("mariadb-dump", "mysqldump")
LOAD_CLIENTS = ("mariadb", "mysql")
DUMP_DESCRIPTION = "mariadb-dump / mysqldump file (llm-proxy db backup on MySQL)"
RESTORE_TOOLS: tuple[tuple[str, ...], ...] = (DUMP_CLIENTS, LOAD_CLIENTS)
INSTALL_HINT = "install the MariaDB or MySQL client tools"


backup, take_backup, restore = server_backup.operations(__name__)


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


def _password(url: URL) -> tuple[str, str] | None:
    return ("MYSQL_PWD", str(url.password)) if url.password else None


def backup_suffix() -> str:
    """The file name suffix of this dialect's backups."""
    return "sql"


def dump(settings: Settings, target: Path) -> Path:
    """Dump the database into ``target`` (which must not exist); failures become BackupError.

    The dump (it holds the projects' API keys) is written under a temporary name created with
    mode 0600 and renamed when the client succeeded; a failure or a signal removes it.
    """
    from llm_proxy_db.dialects.client_tools import run_tool
    from llm_proxy_db.safety.files import written_then_renamed

    if target.exists():
        raise BackupError(f"{target} already exists; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    with written_then_renamed(target, None) as temporary:
        command, _ = backup_command(settings, temporary)
        what = f"{Path(command[0]).name} on {settings.describe()}"
        run_tool(command[0], command[1:], password=_password(settings.sqlalchemy_url()), what=what)
    return target


def load_dump(settings: Settings, dump: Path) -> None:
    """Load a dump written by :func:`dump` into the (empty) database of ``settings``, statement
    by statement (MySQL's DDL commits on its own: a failure leaves what was loaded so far, so
    the version tables are fed last: see :func:`version_tables_last`)."""
    from llm_proxy_db.dialects.client_tools import find_tool, stream_to_tool

    client = find_tool(LOAD_CLIENTS, INSTALL_HINT)
    url = settings.sqlalchemy_url()
    what = f"{Path(client).name} loading {dump.name} into {settings.describe()}"
    args = [*_client_connection_args(url), str(url.database)]
    stream_to_tool(client, args, version_tables_last(dump), password=_password(url), what=what)


_SECTION = re.compile(rb"^-- (?:Table structure|Dumping data) for table `((?:[^`]|``)+)`")
_OTHER_SECTION = re.compile(rb"^-- \S")  # any other header: routines, views, ...
_FOOTER = re.compile(rb"^/\*!\d+ SET \w+=@OLD_")  # restores the session settings, after the data
_VERSION_TABLES = (b"alembic_version", b"goose_db_version")


def version_tables_last(dump: Path) -> Iterator[bytes]:
    """The lines of ``dump`` with the sections of ``alembic_version`` and ``goose_db_version``
    (structure and data) moved after every other one, before the closing session settings:
    a load cut short then leaves an unversioned database, never one claiming a revision
    without its tables (mariadb-dump writes the tables in name order)."""
    held: list[bytes] = []
    footer: list[bytes] = []
    holding = False
    with dump.open("rb") as lines:
        for line in lines:
            if footer or _FOOTER.match(line):
                footer.append(line)
                continue
            if section := _SECTION.match(line):
                holding = section.group(1) in _VERSION_TABLES
            elif _OTHER_SECTION.match(line):
                holding = False
            if holding:
                held.append(line)
            else:
                yield line
    yield from held
    yield from footer


_DUMP_HEADER = re.compile(r"^-- (MariaDB|MySQL) dump ")
_SANDBOX_LINE = "/*M!999999"  # MariaDB 10.11.8+ dumps open with it, before the header
_DUMP_DATABASE = re.compile(r"Database: (\S+)")
_CREATE_TABLE = re.compile(r"^CREATE TABLE `((?:[^`]|``)+)`")
_VERSION_INSERT = "INSERT INTO `alembic_version` VALUES"
_FIRST_VALUE = re.compile(r"\('([^']*)'\)")
_DUMP_COMPLETED = "-- Dump completed"
# A statement choosing, creating or dropping a database (mariadb-dump --databases / --all-databases).
_OTHER_DATABASE = re.compile(r"^(?:/\*!\d*\s*)?(?:USE\s|(?:CREATE|DROP|ALTER)\s+(?:DATABASE|SCHEMA)\b)", re.IGNORECASE)


def inspect_dump(path: Path) -> DumpInfo:
    """What the dump holds, read line by line without loading it: written by mariadb-dump or
    mysqldump, complete (its closing ``-- Dump completed`` line), its tables and revision."""
    try:
        with path.open(encoding="utf-8", errors="strict") as lines:
            first = lines.readline()
            if first.startswith(_SANDBOX_LINE):
                first = lines.readline()
            if not _DUMP_HEADER.match(first):
                raise BackupError(f"{path} is not a {DUMP_DESCRIPTION}")
            return _read_dump_body(path, lines)
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not a {DUMP_DESCRIPTION}") from None


def _read_dump_body(path: Path, lines: Iterator[str]) -> DumpInfo:
    from llm_proxy_db.dialects.server_backup import DumpInfo

    database, revision, tables, last, in_versions = None, None, set(), "", False
    for line in lines:
        if _OTHER_DATABASE.match(line):
            raise BackupError(
                f"{path} names a database of its own ({line.strip()[:60]}); refusing to restore it",
                hint="take the dump of one database without --databases / --all-databases (as "
                "llm-proxy db backup does); the database was not touched",
            )
        if database is None and line.startswith("-- Host:") and (found := _DUMP_DATABASE.search(line)):
            database = found.group(1)
        elif created := _CREATE_TABLE.match(line):
            tables.add(created.group(1).replace("``", "`"))
        if line.startswith(_VERSION_INSERT):
            in_versions = revision is None
        if in_versions and (value := _FIRST_VALUE.search(line)):
            revision, in_versions = value.group(1), False
        if line.strip():
            last = line
    if not last.startswith(_DUMP_COMPLETED):
        raise BackupError(
            f"{path} is incomplete (no '{_DUMP_COMPLETED}' line at its end)",
            hint="the dump was cut short; restore another backup; the database was not touched",
        )
    return DumpInfo(database, frozenset(tables), revision)


def drop_everything(connection: Connection) -> None:
    """Drop every table and view of the database (a forced restore's first step)."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    views, tables = inspector.get_view_names(), inspector.get_table_names()
    connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
    try:
        for kind, names in (("VIEW", views), ("TABLE", tables)):
            if names:
                quoted = ", ".join("`" + name.replace("`", "``") + "`" for name in names)
                connection.exec_driver_sql(f"DROP {kind} IF EXISTS {quoted}")
    finally:
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    connection.commit()


@contextmanager
def copy_of(settings: Settings, work_dir: Path) -> Iterator[Settings]:
    """A scratch database on the same server holding a consistent copy of ``settings``' database.

    Refused on a read-only server or a replica, before anything is written (the scratch
    database would be created there and diverge from its primary)."""
    engine = create_engine(settings)
    try:
        with engine.connect() as connection:
            refuse_unwritable(settings, connection)
    finally:
        engine.dispose()
    copied = dump(settings, work_dir / "rehearsal.sql")
    with scratch_database(settings.sqlalchemy_url(), "rehearsal") as copy:
        load_dump(copy, copied)
        yield copy


# -- scratch databases ------------------------------------------------------------------------


SCRATCH = ScratchRecipe(
    driver=DRIVER,
    create_sql="CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    drop_sql="DROP DATABASE IF EXISTS `{name}`",
    max_name_length=64,
    privilege_hint="the user needs the CREATE and DROP privileges on the server",
)


def scratch_database(server: URL, purpose: str = "scratch") -> AbstractContextManager[Settings]:
    """A new, empty database on the server of ``server``, dropped afterwards."""
    return scratch.scratch_database(SCRATCH, server, purpose)


def schema_cookie(connection: Connection) -> object | None:
    """None: no cheap marker of schema changes, so the schema is read again."""
    del connection
    return None


def server_family(connection: Connection) -> str:
    """``mariadb-<major.minor>`` or ``mysql-<major.minor>``: the two reflect CHECKs and
    defaults differently, and so may their releases."""
    version = tuple(connection.dialect.server_version_info or (0, 0))[:2]
    name = "mariadb" if getattr(connection.dialect, "is_mariadb", False) else "mysql"
    return f"{name}-{'.'.join(str(part) for part in version)}"


@contextmanager
def scratch_connection(connection: Connection) -> Iterator[Connection]:
    """A connection to a scratch database on the server of ``connection`` (MySQL has no
    transactional DDL to roll back, so the database is dropped instead)."""
    from llm_proxy_db.database import connect

    server = connection.engine.url
    with scratch_database(server, "states") as settings, connect(settings, foreign_keys=False) as scratch:
        yield scratch
