"""The llm-proxy service, as far as its database sees it: its start-up and its statements.

Written from the facts of the schema reference (``llm-proxy-schema.md`` sections 3, 3b, 4
and 5), not from the service's code.  It talks to the database through the raw drivers
(``sqlite3``; ``psycopg`` with PostgreSQL's own ``$n`` placeholders; ``PyMySQL`` with ``%s``),
binding values the way the Go drivers bind them, so nothing of this project's code stands
between the two.

API (two calls, both take this project's ``Settings``)::

    started = start_service(settings)   # the CURRENT release's start-up; ServiceStartError
    assert started.changed_nothing      #   when the real service would exit
    exercise_service(settings)          # every statement of section 5, results asserted

``start_service``
    SQLite: the release's ``schema.sql`` (section 4) with ``CREATE TABLE/INDEX IF NOT
    EXISTS``.  PostgreSQL: ``pg_try_advisory_lock(3141592653)`` tried 10 times 100 ms apart
    (else :class:`ServiceStartError`), ``goose_db_version`` created if missing (seed row 0),
    then every goose file above the recorded version, each in its own transaction and
    recorded on success; a failing file stops the start (:class:`ServiceStartError`).
    MySQL: ``GET_LOCK('llm-proxy-migrations', 10)`` tried 10 times, the goose table likewise,
    then the MySQL goose files 1-5 above the recorded version (``fixtures/goose_mysql.sql``).
    MySQL commits each DDL statement: a file failing half-way keeps its earlier statements
    (and is not recorded); ``RELEASE_LOCK`` after.
    Returns :class:`ServiceStart`: what it applied and the schema before and after.
``exercise_service``
    Projects, tokens, audit events, stats and (SQLite) maintenance, with the results checked;
    returns the number of statements run.  It leaves audit events behind, deletes the
    projects and tokens it made, and (as the service does) deletes expired tokens.

MySQL values are bound as go-sql-driver/mysql binds them with ``parseTime=true``: a time as
``'YYYY-MM-DD HH:MM:SS.ffffff'`` text (UTC), a boolean as 1/0; its ``RowsAffected`` counts the
rows an UPDATE *changed* (no ``clientFoundRows``), which :meth:`_Session.changed` reports as is.

Another dialect adds an entry to ``_CONNECT``, ``_SNAPSHOT``, ``_STARTS`` and its
placeholder/binding rules in ``_Session``.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_proxy_db.config.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
SERVICE_LOCK_KEY = 3141592653  # the service's goose runner, PostgreSQL (section 3)
SERVICE_LOCK_NAME = "llm-proxy-migrations"  # ... and MySQL's GET_LOCK name
LOCK_TRIES, LOCK_PAUSE = 10, 0.1
MYSQL_LOCK_WAIT = 10  # seconds GET_LOCK waits, per try


class ServiceStartError(Exception):
    """The emulated service did not start (the real one would exit)."""


@dataclass
class ServiceStart:
    """What a start-up did: ``applied`` (goose versions / SQLite objects) and the schema."""

    dialect: str
    applied: list[str] = field(default_factory=list)
    schema_before: tuple[tuple[str, ...], ...] = ()
    schema_after: tuple[tuple[str, ...], ...] = ()

    @property
    def changed_nothing(self) -> bool:
        """Applied nothing and left every table, column, constraint and index as it was."""
        return not self.applied and self.schema_before == self.schema_after

    @property
    def goose_versions(self) -> list[int]:
        """The goose versions applied (PostgreSQL)."""
        return [int(item.split()[1]) for item in self.applied if item.startswith("goose ")]


# --- connections: raw drivers, configured as the service configures them -------------------


def _connect_sqlite(settings: Settings) -> Any:
    assert settings.database_path is not None
    connection = sqlite3.connect(settings.database_path, isolation_level=None, timeout=5)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def _connect_postgresql(settings: Settings) -> Any:
    import psycopg

    assert settings.database_url is not None
    url = settings.database_url.set(drivername="postgresql")
    return psycopg.connect(
        url.render_as_string(hide_password=False), autocommit=True, cursor_factory=psycopg.RawCursor
    )


class _MySQLConnection:
    """PyMySQL with the ``connection.execute(sql, params) -> cursor`` shape of the other two."""

    def __init__(self, connection: Any) -> None:
        self.raw = connection

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``%s`` placeholders); returns its cursor, rows fetched."""
        cursor = self.raw.cursor()
        cursor.execute(statement, tuple(params) or None)
        return cursor

    def close(self) -> None:
        """Close the connection (a held GET_LOCK dies with it)."""
        self.raw.close()


def _connect_mysql(settings: Settings) -> Any:
    """Autocommit, utf8mb4, no client-side found-rows flag: as go-sql-driver/mysql connects."""
    import pymysql

    url = settings.database_url
    assert url is not None
    connection = pymysql.connect(
        host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "",
        password=url.password or "", database=url.database, charset="utf8mb4", autocommit=True,
    )
    return _MySQLConnection(connection)


_CONNECT: dict[str, Callable[[Settings], Any]] = {
    "sqlite": _connect_sqlite,
    "postgresql": _connect_postgresql,
    "mysql": _connect_mysql,
}


@contextmanager
def _connection(settings: Settings) -> Iterator[Any]:
    connection = _CONNECT[settings.dialect_name](settings)
    try:
        yield connection
    finally:
        connection.close()


# --- schema snapshots: "changed nothing" is judged from the catalogs ---------------------------

_PG_SNAPSHOT = """
SELECT 'column', table_name || '.' || column_name,
       data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
  FROM information_schema.columns WHERE table_schema = current_schema()
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
UNION ALL
SELECT 'index', tablename || '.' || indexname, indexdef
  FROM pg_indexes WHERE schemaname = current_schema()
ORDER BY 1, 2
"""
_SQLITE_SNAPSHOT = (
    "SELECT type, name, coalesce(sql, '') FROM sqlite_master "
    "WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name"
)
_MYSQL_SNAPSHOT = """
SELECT 'table', table_name, CONCAT(engine, ' ', table_collation)
  FROM information_schema.tables WHERE table_schema = DATABASE()
UNION ALL
SELECT 'column', CONCAT(table_name, '.', column_name),
       CONCAT(column_type, ' ', is_nullable, ' ', COALESCE(column_default, ''), ' ', extra)
  FROM information_schema.columns WHERE table_schema = DATABASE()
UNION ALL
SELECT 'constraint', CONCAT(table_name, '.', constraint_name), constraint_type
  FROM information_schema.table_constraints WHERE table_schema = DATABASE()
UNION ALL
SELECT 'check', constraint_name, check_clause
  FROM information_schema.check_constraints WHERE constraint_schema = DATABASE()
UNION ALL
SELECT 'index', CONCAT(table_name, '.', index_name),
       CONCAT(non_unique, ' ', GROUP_CONCAT(column_name ORDER BY seq_in_index))
  FROM information_schema.statistics WHERE table_schema = DATABASE()
  GROUP BY table_name, index_name, non_unique
ORDER BY 1, 2, 3
"""
_SNAPSHOT = {"sqlite": _SQLITE_SNAPSHOT, "postgresql": _PG_SNAPSHOT, "mysql": _MYSQL_SNAPSHOT}


def schema_snapshot(settings: Settings) -> tuple[tuple[str, ...], ...]:
    """Every table, column, constraint and index, as the database's catalog states them."""
    with _connection(settings) as connection:
        return _snapshot(connection, settings.dialect_name)


def _snapshot(connection: Any, dialect: str) -> tuple[tuple[str, ...], ...]:
    rows = connection.execute(_SNAPSHOT[dialect]).fetchall()
    return tuple(tuple(str(value) for value in row) for row in rows)


# --- start-up ------------------------------------------------------------------------------


def start_service(settings: Settings) -> ServiceStart:
    """Replay the current release's start-up on the database (see the module docstring)."""
    dialect = settings.dialect_name
    with _connection(settings) as connection:
        result = ServiceStart(dialect, schema_before=_snapshot(connection, dialect))
        _STARTS[dialect](connection, result)
        result.schema_after = _snapshot(connection, dialect)
    return result


def _if_not_exists(sql: str) -> str:
    sql = re.sub(r"\bCREATE TABLE (?!IF NOT EXISTS)", "CREATE TABLE IF NOT EXISTS ", sql)
    return re.sub(r"\bCREATE INDEX (?!IF NOT EXISTS)", "CREATE INDEX IF NOT EXISTS ", sql)


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _start_sqlite(connection: Any, result: ServiceStart) -> None:
    """The release's ``schema.sql``: creates only what is missing (section 3b)."""
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    for statement in _statements(_if_not_exists((FIXTURES / "head_sqlite.sql").read_text())):
        connection.execute(statement)
        created = re.search(r"IF NOT EXISTS (\w+)", statement)
        if created and created.group(1) not in names:
            result.applied.append(created.group(1))


def _pg_goose_files() -> dict[int, list[str]]:
    """PostgreSQL goose files 1-6 of the current release, as section 3 describes them."""
    first = (FIXTURES / "head_postgresql.sql").read_text().split("-- goose 2")[0]
    file_1 = _if_not_exists(first).replace("openai_api_key TEXT", "api_key TEXT")
    return {
        1: _statements(file_1),
        2: [
            "ALTER TABLE projects ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMP",
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS deactivated_at TIMESTAMP",
        ],
        3: ["ALTER TABLE tokens ADD COLUMN IF NOT EXISTS cache_hit_count INTEGER NOT NULL DEFAULT 0"],
        4: [
            "ALTER TABLE tokens ADD COLUMN id UUID DEFAULT gen_random_uuid()",
            "UPDATE tokens SET id = gen_random_uuid() WHERE id IS NULL",
            "ALTER TABLE tokens ALTER COLUMN id SET NOT NULL",
            "ALTER TABLE tokens DROP CONSTRAINT tokens_pkey",
            "ALTER TABLE tokens ADD PRIMARY KEY (id)",
            "ALTER TABLE tokens ADD CONSTRAINT tokens_token_unique UNIQUE (token)",
            "CREATE INDEX idx_tokens_token ON tokens(token)",
        ],
        5: [
            """DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = 'projects' AND column_name = 'openai_api_key')
     AND NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = 'projects' AND column_name = 'api_key') THEN
    ALTER TABLE projects RENAME COLUMN openai_api_key TO api_key;
  END IF;
END $$"""
        ],
        6: [
            "ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_outcome_check",
            "ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check "
            "CHECK (outcome IN ('success', 'failure', 'denied', 'error'))",
        ],
    }


_GOOSE_TABLE_PG = (
    "CREATE TABLE goose_db_version (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "
    "version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now())"
)


def _run_goose(
    connection: Any,
    result: ServiceStart,
    files: dict[int, list[str]],
    steps: tuple[Callable[[Any], None], Callable[[Any], int], Callable[[Any, int, Sequence[str]], None], str],
) -> None:
    """goose's up: take the lock, apply every file above the recorded version, release the lock.

    ``steps`` is the dialect's (take lock, read version, apply file, unlock statement).
    """
    take_lock, current_version, apply_file, unlock = steps
    take_lock(connection)
    try:
        current = current_version(connection)
        for version, statements in sorted(files.items()):
            if version > current:
                apply_file(connection, version, statements)
                result.applied.append(f"goose {version}")
    finally:
        connection.execute(unlock)


def _start_postgresql(connection: Any, result: ServiceStart) -> None:
    """Lock, goose table, every file above the recorded version; unlock."""
    unlock = f"SELECT pg_advisory_unlock({SERVICE_LOCK_KEY})"
    steps = (_take_service_lock, _pg_goose_version, _apply_goose_file, unlock)
    _run_goose(connection, result, _pg_goose_files(), steps)


def _take_service_lock(connection: Any) -> None:
    for attempt in range(LOCK_TRIES):
        if connection.execute("SELECT pg_try_advisory_lock($1)", (SERVICE_LOCK_KEY,)).fetchone()[0]:
            return
        if attempt < LOCK_TRIES - 1:
            time.sleep(LOCK_PAUSE)
    raise ServiceStartError(f"failed to acquire the migration lock {SERVICE_LOCK_KEY}")


def _pg_goose_version(connection: Any) -> int:
    if connection.execute("SELECT to_regclass('goose_db_version')").fetchone()[0] is None:
        with connection.transaction():
            connection.execute(_GOOSE_TABLE_PG)
            connection.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true)")
    row = connection.execute(
        "SELECT max(version_id) FROM goose_db_version WHERE is_applied = $1", (True,)
    ).fetchone()
    return int(row[0] or 0)


def _apply_goose_file(connection: Any, version: int, statements: Sequence[str]) -> None:
    import psycopg

    try:
        with connection.transaction():
            for statement in statements:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, $2)",
                (version, True),
            )
    except psycopg.Error as exc:
        raise ServiceStartError(f"goose file {version} failed: {exc}".splitlines()[0]) from exc


# --- start-up, MySQL: GET_LOCK, goose MySQL files 1-5, none of them transactional --------------

_GOOSE_TABLE_MYSQL = (
    "CREATE TABLE goose_db_version (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
    "version_id BIGINT NOT NULL, is_applied BOOLEAN NOT NULL, "
    "tstamp TIMESTAMP NULL DEFAULT now(), PRIMARY KEY (id))"
)


def _mysql_goose_files() -> dict[int, list[str]]:
    """MySQL goose files 1-5 of the current release (section 3), split at ``-- goose N``."""
    text = (FIXTURES / "goose_mysql.sql").read_text()
    parts = re.split(r"^-- goose (\d+)\s*$", text, flags=re.MULTILINE)
    return {int(number): _statements(body) for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def _start_mysql(connection: Any, result: ServiceStart) -> None:
    """GET_LOCK, goose table, every MySQL file above the recorded version; RELEASE_LOCK."""
    unlock = f"SELECT RELEASE_LOCK('{SERVICE_LOCK_NAME}')"
    steps = (_take_mysql_lock, _mysql_goose_version, _apply_mysql_goose_file, unlock)
    _run_goose(connection, result, _mysql_goose_files(), steps)


def _take_mysql_lock(connection: Any) -> None:
    for _ in range(LOCK_TRIES):
        if connection.execute("SELECT GET_LOCK(%s, %s)", (SERVICE_LOCK_NAME, MYSQL_LOCK_WAIT)).fetchone()[0] == 1:
            return
    raise ServiceStartError(f"failed to acquire the migration lock {SERVICE_LOCK_NAME}")


def _mysql_goose_version(connection: Any) -> int:
    exists = connection.execute(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name = %s", ("goose_db_version",),
    ).fetchone()[0]
    if not exists:
        connection.execute(_GOOSE_TABLE_MYSQL)
        connection.execute("INSERT INTO goose_db_version (version_id, is_applied) VALUES (%s, %s)", (0, 1))
    row = connection.execute(
        "SELECT MAX(version_id) FROM goose_db_version WHERE is_applied = %s", (1,)
    ).fetchone()
    return int(row[0] or 0)


def _apply_mysql_goose_file(connection: Any, version: int, statements: Sequence[str]) -> None:
    """Each DDL statement commits on its own: a failure keeps what ran before it."""
    import pymysql

    try:
        for statement in statements:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO goose_db_version (version_id, is_applied) VALUES (%s, %s)", (version, 1)
        )
    except pymysql.MySQLError as exc:
        raise ServiceStartError(f"goose file {version} failed: {exc}".splitlines()[0]) from exc


_STARTS: dict[str, Callable[[Any, ServiceStart], None]] = {
    "sqlite": _start_sqlite,
    "postgresql": _start_postgresql,
    "mysql": _start_mysql,
}


# --- serving: the statements of section 5 ----------------------------------------------------


class _Session:
    """Runs the service's ``?`` statements with its dialect's placeholders and bindings."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.count = 0

    def sql(self, statement: str) -> str:
        """``?`` as the driver wants it: kept on SQLite, ``$1..$n`` on PostgreSQL, ``%s`` on
        MySQL (PyMySQL's paramstyle; a literal ``%`` doubled)."""
        if self.dialect == "mysql":
            return statement.replace("%", "%%").replace("?", "%s")
        if self.dialect != "postgresql":
            return statement
        numbers = iter(range(1, statement.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(numbers)}", statement)

    def run(self, statement: str, *params: Any) -> Any:
        """Execute; returns the cursor."""
        self.count += 1
        return self.connection.execute(self.sql(statement), params)

    def rows(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Execute and fetch every row."""
        return list(self.run(statement, *params).fetchall())

    def changed(self, statement: str, *params: Any) -> int:
        """Execute; returns the number of rows changed."""
        return int(self.run(statement, *params).rowcount)

    def time(self, moment: dt.datetime) -> Any:
        """go-sqlite3 binds time as text ``2006-01-02 15:04:05.999999999-07:00``; PostgreSQL
        drivers send a timestamp; go-sql-driver/mysql (``parseTime=true``, ``loc`` UTC) sends
        ``2006-01-02 15:04:05.999999`` text."""
        if self.dialect == "mysql":
            return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        if self.dialect != "sqlite":
            return moment.replace(tzinfo=None)
        text = moment.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
        return text + "+00:00"

    def read_time(self, moment: dt.datetime) -> Any:
        """A time bound by :meth:`time`, as the driver reads it back: SQLite returns the text,
        the server dialects a naive UTC timestamp."""
        if self.dialect == "sqlite":
            return self.time(moment)
        return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def flag(self, value: bool) -> Any:
        """go-sqlite3 and go-sql-driver/mysql bind bool as integer 1/0; PostgreSQL gets a
        real boolean."""
        return value if self.dialect == "postgresql" else int(value)

    def unchanged(self, matched: int) -> int:
        """``RowsAffected`` of an UPDATE that matched ``matched`` rows but changed none:
        MySQL counts changed rows (go-sql-driver/mysql without ``clientFoundRows``)."""
        return 0 if self.dialect == "mysql" else matched

    def truth(self, value: Any) -> bool:
        """A boolean column read back."""
        return bool(value)


PROJECT_COLUMNS = "id, name, api_key, is_active, deactivated_at, created_at, updated_at"
TOKEN_COLUMNS = (
    "id, token, project_id, expires_at, is_active, deactivated_at, request_count, max_requests, "
    "created_at, last_used_at, cache_hit_count"
)
AUDIT_COLUMNS = (
    "id, timestamp, action, actor, project_id, request_id, correlation_id, client_ip, method, "
    "path, user_agent, outcome, reason, token_id, metadata"
)
REVOKE = "UPDATE tokens SET is_active = ?, deactivated_at = COALESCE(deactivated_at, ?) WHERE "


def exercise_service(settings: Settings) -> int:
    """Run every service statement of section 5 and check the results; returns how many ran."""
    with _connection(settings) as connection:
        session = _Session(connection, settings.dialect_name)
        tag = uuid.uuid4().hex[:10]
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=123456)
        projects = _projects(session, tag, now)
        tokens = _tokens(session, projects, tag, now)
        _counters(session, tokens, now)
        _revocations(session, projects, tokens, now)
        _audit(session, projects, tag, now)
        _stats(session)
        _deletes(session, projects, tokens, now)
        if settings.dialect_name == "sqlite":
            assert settings.database_path is not None
            _maintenance(session, settings.database_path.parent / f"service-backup-{tag}.db")
        return session.count


def _projects(s: _Session, tag: str, now: dt.datetime) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for number, project in enumerate(ids):
        s.run(
            f"INSERT INTO projects ({PROJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            project, f"svc-{tag}-{number}", f"sk-{tag}-{number}", s.flag(True), None,
            s.time(now), s.time(now),
        )
    (row,) = s.rows(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?", ids[0])
    assert row[1] == f"svc-{tag}-0" and s.truth(row[3]) and row[4] is None, row
    assert s.rows(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?", f"svc-{tag}-1")[0][0] == ids[1]
    names = [row[1] for row in s.rows(f"SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name")]
    assert names.index(f"svc-{tag}-0") + 1 == names.index(f"svc-{tag}-1")
    updated = s.changed(
        "UPDATE projects SET name = ?, api_key = ?, is_active = ?, deactivated_at = ?, "
        "updated_at = ? WHERE id = ?",
        f"svc-{tag}-1b", f"sk-{tag}-rotated", s.flag(False), s.time(now), s.time(now), ids[1],
    )
    assert updated == 1
    (row,) = s.rows(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?", ids[1])
    assert row[2] == f"sk-{tag}-rotated" and not s.truth(row[3]) and row[4] is not None
    return ids


def _tokens(s: _Session, projects: list[str], tag: str, now: dt.datetime) -> dict[str, str]:
    """Creates limited, plain, expired, other-project and spare tokens; returns name -> token."""
    hour = dt.timedelta(hours=1)
    specs = {  # name: (project, expires_at, max_requests)
        "limited": (projects[0], now + hour, 2),
        "plain": (projects[0], None, None),
        "expired": (projects[0], now - hour, None),
        "other": (projects[1], now + hour, None),
        "spare": (projects[0], None, 10),
    }
    tokens = {}
    for age, (name, (project, expires, limit)) in enumerate(specs.items()):
        tokens[name] = f"sk-{tag}-{name}"
        created = now - dt.timedelta(seconds=age)
        s.run(
            "INSERT INTO tokens (id, token, project_id, expires_at, is_active, deactivated_at, "
            "request_count, max_requests, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            str(uuid.uuid4()), tokens[name], project, expires and s.time(expires), s.flag(True),
            None, 0, limit, s.time(created), None,
        )
    (row,) = s.rows(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token = ?", tokens["plain"])
    assert row[0] and row[6] == 0 and row[10] == 0 and s.truth(row[4]), row
    assert s.rows(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = ?", row[0])[0][1] == tokens["plain"]
    listed = [r[1] for r in s.rows(f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC")]
    assert set(tokens.values()) <= set(listed)
    mine = s.rows(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE project_id = ? ORDER BY created_at DESC", projects[0])
    assert [r[1] for r in mine] == [tokens[n] for n in ("limited", "plain", "expired", "spare")]
    _token_updates(s, tokens, projects, now)
    return tokens


def _token_updates(s: _Session, tokens: dict[str, str], projects: list[str], now: dt.datetime) -> None:
    update = (
        "UPDATE tokens SET project_id = ?, expires_at = ?, is_active = ?, deactivated_at = ?, "
        "request_count = ?, max_requests = ?, last_used_at = ? WHERE "
    )
    (spare_id,) = s.rows("SELECT id FROM tokens WHERE token = ?", tokens["spare"])[0]
    values = (projects[0], None, s.flag(True), None, 0, 20, s.time(now))
    assert s.changed(update + "id = ?", *values, spare_id) == 1
    assert s.changed(update + "token = ?", *values[:5], 30, values[6], tokens["spare"]) == 1
    assert s.rows("SELECT max_requests FROM tokens WHERE id = ?", spare_id)[0][0] == 30


def _counters(s: _Session, tokens: dict[str, str], now: dt.datetime) -> None:
    usage = (
        "UPDATE tokens SET request_count = request_count + 1, last_used_at = ? "
        "WHERE token = ? AND is_active = ? AND (expires_at IS NULL OR expires_at > ?) "
        "AND (max_requests IS NULL OR max_requests <= 0 OR request_count < max_requests)"
    )
    counted = [s.changed(usage, s.time(now), tokens["limited"], s.flag(True), s.time(now)) for _ in range(3)]
    assert counted == [1, 1, 0], "max_requests must stop the third request"
    assert s.changed(usage, s.time(now), tokens["expired"], s.flag(True), s.time(now)) == 0
    batched = "UPDATE tokens SET request_count = request_count + ?, last_used_at = ? WHERE token = ?"
    assert s.changed(batched, 5, s.time(now), tokens["plain"]) == 1
    assert s.changed("UPDATE tokens SET cache_hit_count = cache_hit_count + ? WHERE token = ?", 3, tokens["plain"]) == 1
    (row,) = s.rows(f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token = ?", tokens["plain"])
    assert (row[6], row[10]) == (5, 3) and row[9] is not None, row
    assert s.rows("SELECT request_count FROM tokens WHERE token = ?", tokens["limited"])[0][0] == 2


def _revocations(s: _Session, projects: list[str], tokens: dict[str, str], now: dt.datetime) -> None:
    later = now + dt.timedelta(minutes=5)
    assert s.changed(REVOKE + "token = ?", s.flag(False), s.time(now), tokens["plain"]) == 1
    again = s.changed(REVOKE + "token = ?", s.flag(False), s.time(later), tokens["plain"])
    assert again == s.unchanged(1)
    first = s.rows("SELECT deactivated_at FROM tokens WHERE token = ?", tokens["plain"])[0][0]
    assert first == s.read_time(now), "COALESCE keeps the first deactivation time"
    batch = REVOKE + "token IN (?, ?) AND is_active = ?"
    assert s.changed(batch, s.flag(False), s.time(now), tokens["limited"], tokens["spare"], s.flag(True)) == 2
    project = REVOKE + "project_id = ? AND is_active = ?"
    assert s.changed(project, s.flag(False), s.time(now), projects[1], s.flag(True)) == 1
    expired = REVOKE + "expires_at IS NOT NULL AND expires_at < ? AND is_active = ?"
    assert s.changed(expired, s.flag(False), s.time(now), s.time(now), s.flag(True)) >= 1
    active = s.rows("SELECT is_active FROM tokens WHERE token = ?", tokens["expired"])[0][0]
    assert not s.truth(active)


def _audit(s: _Session, projects: list[str], tag: str, now: dt.datetime) -> None:
    outcomes = ("success", "failure", "denied", "error")
    ids = [str(uuid.uuid4()) for _ in outcomes]
    for number, (event, outcome) in enumerate(zip(ids, outcomes, strict=True)):
        s.run(
            f"INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            event, s.time(now - dt.timedelta(minutes=number)), "token.use", f"svc-{tag}",
            projects[0], f"req-{tag}-{number}", None, "10.9.8.7", "POST", "/v1/chat/completions",
            "emulator/1.0", outcome, None if outcome == "success" else f"because {tag}", None,
            f'{{"tag": "{tag}"}}',
        )
    (row,) = s.rows(f"SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id = ?", ids[2])
    assert row[11] == "denied" and row[3] == f"svc-{tag}", row
    where = (
        " FROM audit_events WHERE action = ? AND client_ip = ? AND project_id = ? AND outcome = ? "
        "AND timestamp >= ? AND timestamp <= ?"
    )
    window = (s.time(now - dt.timedelta(hours=1)), s.time(now + dt.timedelta(hours=1)))
    filters = ("token.use", "10.9.8.7", projects[0], "error", *window)
    listed = s.rows(f"SELECT {AUDIT_COLUMNS}{where} ORDER BY timestamp DESC LIMIT ? OFFSET ?", *filters, 10, 0)
    assert [r[0] for r in listed] == [ids[3]]
    assert s.rows(f"SELECT COUNT(*){where}", *filters)[0][0] == 1
    search = (
        " FROM audit_events WHERE (action LIKE ? OR actor LIKE ? OR path LIKE ? OR reason LIKE ? "
        "OR metadata LIKE ?)"
    )
    pattern = (f"%{tag}%",) * 5
    found = s.rows(f"SELECT {AUDIT_COLUMNS}{search} ORDER BY timestamp DESC LIMIT ? OFFSET ?", *pattern, 10, 0)
    assert [r[0] for r in found] == ids
    assert s.rows(f"SELECT COUNT(*){search}", *pattern)[0][0] == 4


def _stats(s: _Session) -> None:
    projects = s.rows("SELECT COUNT(*) FROM projects")[0][0]
    tokens = s.rows("SELECT COUNT(*) FROM tokens")[0][0]
    active = s.rows("SELECT COUNT(*) FROM tokens WHERE is_active = ?", s.flag(True))[0][0]
    requests = s.rows("SELECT COALESCE(SUM(request_count), 0) FROM tokens")[0][0]
    assert projects >= 2 and tokens >= 5 and active <= tokens and requests >= 7
    assert s.rows(SIZE_QUERIES[s.dialect])[0][0] > 0


SIZE_QUERIES = {
    "sqlite": "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    "postgresql": "SELECT pg_database_size(current_database())",
    "mysql": (
        "SELECT SUM(data_length + index_length) FROM information_schema.tables "
        "WHERE table_schema = DATABASE()"
    ),
}


def _deletes(s: _Session, projects: list[str], tokens: dict[str, str], now: dt.datetime) -> None:
    assert s.changed("DELETE FROM tokens WHERE token = ?", tokens["other"]) == 1
    assert s.changed("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?", s.time(now)) >= 1
    assert not s.rows("SELECT id FROM tokens WHERE token = ?", tokens["expired"])
    assert s.changed("DELETE FROM projects WHERE id = ?", projects[0]) == 1
    left = s.rows("SELECT COUNT(*) FROM tokens WHERE project_id = ?", projects[0])[0][0]
    assert left == 0, "deleting a project must cascade to its tokens"
    assert s.changed("DELETE FROM projects WHERE id = ?", projects[1]) == 1


def _maintenance(s: _Session, backup: Path) -> None:
    for statement in ("VACUUM", "ANALYZE", "PRAGMA optimize"):
        s.run(statement)
    s.run("VACUUM INTO ?", str(backup))
    try:
        check = sqlite3.connect(backup)
        assert check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        check.close()
    finally:
        backup.unlink(missing_ok=True)
