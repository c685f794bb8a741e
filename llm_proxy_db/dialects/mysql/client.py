"""MySQL's client tools: ``mariadb-dump``/``mysqldump`` and ``mariadb``/``mysql`` (dump, inspect, load).

The steps of a backup or a restore are :mod:`llm_proxy_db.safety.server_backup`'s; these are its primitives.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.base import DumpInfo
from llm_proxy_db.dialects.client_tools import find_tool, run_tool, stream_to_tool
from llm_proxy_db.dialects.mysql.connection import _last
from llm_proxy_db.dialects.unfinished import UNFINISHED_TABLE
from llm_proxy_db.errors import BackupError
from llm_proxy_db.files import written_then_renamed

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection


DUMP_CLIENTS = ("mariadb-dump", "mysqldump")
LOAD_CLIENTS = ("mariadb", "mysql")
DUMP_DESCRIPTION = "mariadb-dump / mysqldump file (llm-proxy-db db backup on MySQL)"
RESTORE_TOOLS: tuple[tuple[str, ...], ...] = (DUMP_CLIENTS, LOAD_CLIENTS)
INSTALL_HINT = "install the MariaDB or MySQL client tools"
_NOT_A_DUMP_HINT = "restore a dump `llm-proxy-db db backup` wrote (mariadb-dump); the database was not touched"


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
    if os.path.lexists(target):  # a dangling symlink too: never replaced, never followed
        raise BackupError(f"{target} already exists", hint="choose another --out (nothing is ever overwritten)")
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
    client = find_tool(LOAD_CLIENTS, INSTALL_HINT)
    url = settings.sqlalchemy_url()
    what = f"{Path(client).name} loading {dump.name} into {settings.describe()}"
    args = [*_client_connection_args(url), str(url.database)]
    stream_to_tool(client, args, version_tables_last(dump), password=_password(url), what=what)

_SECTION = re.compile(rb"^-- (?:Table structure|Dumping data) for table `((?:[^`]|``)+)`")
_OTHER_SECTION = re.compile(rb"^-- \S")  # any other header: routines, views, ...
_FOOTER = re.compile(rb"^/\*!\d+ SET \w+=@OLD_")  # restores the session settings, after the data
_VERSION_TABLES = (b"alembic_version", b"goose_db_version")
_MARKER = UNFINISHED_TABLE.encode()


def version_tables_last(dump: Path) -> Iterator[bytes]:
    """The lines of ``dump`` with the sections of ``alembic_version`` and ``goose_db_version``
    (structure and data) moved after every other one, before the closing session settings:
    a load cut short then leaves an unversioned database, never one claiming a revision
    without its tables (mariadb-dump writes the tables in name order).  The section of the
    marker of an unfinished operation is left out: the load must never drop the marker of the
    restore itself; its rows are carried by the restore (``DumpInfo.unfinished``)."""
    held: list[bytes] = []
    footer: list[bytes] = []
    holding = skipping = False
    with dump.open("rb") as lines:
        for line in lines:
            if footer or _FOOTER.match(line):
                footer.append(line)
                continue
            if section := _SECTION.match(line):
                holding = section.group(1) in _VERSION_TABLES
                skipping = section.group(1) == _MARKER
            elif _OTHER_SECTION.match(line):
                holding = skipping = False
            if skipping:
                continue
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
_MARKER_INSERT = f"INSERT INTO `{UNFINISHED_TABLE}` VALUES"
_MARKER_ROW = re.compile(r"\('((?:[^'\\]|\\.)*)','((?:[^'\\]|\\.)*)',")
_ESCAPED = re.compile(r"\\(.)")
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
                raise BackupError(f"{path} is not a {DUMP_DESCRIPTION}", hint=_NOT_A_DUMP_HINT)
            return _read_dump_body(path, lines)
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not a {DUMP_DESCRIPTION}", hint=_NOT_A_DUMP_HINT) from None


def _read_dump_body(path: Path, lines: Iterator[str]) -> DumpInfo:
    database, revision, tables, last, in_versions = None, None, set(), "", False
    marker: list[tuple[str, str]] = []
    in_marker = False
    for line in lines:
        if _OTHER_DATABASE.match(line):
            raise BackupError(
                f"{path} names a database of its own ({line.strip()[:60]}); refusing to restore it",
                hint="take the dump of one database without --databases / --all-databases (as "
                "llm-proxy-db db backup does); the database was not touched",
            )
        if database is None and line.startswith("-- Host:") and (found := _DUMP_DATABASE.search(line)):
            database = found.group(1)
        elif created := _CREATE_TABLE.match(line):
            tables.add(created.group(1).replace("``", "`"))
        if line.startswith(_VERSION_INSERT):
            in_versions = revision is None
        if in_versions and (value := _FIRST_VALUE.search(line)):
            revision, in_versions = value.group(1), False
        in_marker = in_marker or line.startswith(_MARKER_INSERT)  # its rows: on that line or the next ones
        if in_marker:
            marker += [(_unescape(kind), _unescape(subject)) for kind, subject in _MARKER_ROW.findall(line)]
            in_marker = not line.rstrip().endswith(";")
        if line.strip():
            last = line
    if not last.startswith(_DUMP_COMPLETED):
        raise BackupError(
            f"{path} is incomplete (no '{_DUMP_COMPLETED}' line at its end)",
            hint="the dump was cut short; restore another backup; the database was not touched",
        )
    return DumpInfo(database, frozenset(tables), revision, tuple(marker))


def _unescape(value: str) -> str:
    """A string value as mariadb-dump writes it (backslash escapes), read back."""
    return _ESCAPED.sub(lambda found: {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(found[1], found[1]), value)


def drop_everything(connection: Connection) -> None:
    """Drop every table and view of the database but a restore's marker (a forced restore's first step)."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    views = inspector.get_view_names()
    tables = [name for name in inspector.get_table_names() if name != UNFINISHED_TABLE]  # the restore's marker
    connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
    try:
        for kind, names in (("VIEW", views), ("TABLE", tables)):
            if names:
                quoted = ", ".join("`" + name.replace("`", "``") + "`" for name in names)
                connection.exec_driver_sql(f"DROP {kind} IF EXISTS {quoted}")
    finally:
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    connection.commit()
