"""PostgreSQL's client tools: ``pg_dump`` and ``pg_restore``/``psql`` (dump, inspect, load),
and dropping a schema's contents.

The steps of a backup or a restore are :mod:`llm_proxy_db.safety.server_backup`'s; these are its primitives.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.config.waits import wait_bound_ms
from llm_proxy_db.dialects import client_tools
from llm_proxy_db.dialects.base import DumpInfo
from llm_proxy_db.dialects.client_tools import find_tool
from llm_proxy_db.dialects.client_tools import run_tool as run
from llm_proxy_db.dialects.postgresql.waits import client_options
from llm_proxy_db.errors import BackupError
from llm_proxy_db.files import written_then_renamed

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


DUMP_DESCRIPTION = "pg_dump custom-format file (llm-proxy-db db backup on PostgreSQL)"
RESTORE_TOOLS: tuple[tuple[str, ...], ...] = (("pg_dump",), ("pg_restore",), ("psql",))
INSTALL_HINT = "install the PostgreSQL client tools (of the server's major version or newer)"


def backup_suffix() -> str:
    """The file name suffix of this dialect's backups."""
    return "dump"


def dump(settings: Settings, target: Path) -> Path:
    """The dialect's backup: :func:`pg_dump` into ``target``."""
    return pg_dump(settings, target)


def pg_dump(settings: Settings, target: Path) -> Path:
    """``pg_dump --format=custom`` of the database into ``target`` (which must not exist).

    The dump (it holds the projects' API keys) is written under a temporary name created
    with mode 0600, and renamed when ``pg_dump`` succeeded; a failure or a signal removes it.
    """
    if os.path.lexists(target):  # a dangling symlink too: never replaced, never followed
        raise BackupError(f"{target} already exists", hint="choose another --out (nothing is ever overwritten)")
    try:
        with written_then_renamed(target, None) as temporary:
            # pg_dump sets lock_timeout = 0 for its own session (PGOPTIONS is overridden): its
            # wait for the tables' locks is bounded by --lock-wait-timeout instead.
            run_tool("pg_dump", settings, ["--format=custom", f"--lock-wait-timeout={wait_bound_ms()}",
                                           f"--file={temporary}"])
    except OSError as exc:
        if isinstance(exc, BackupError):
            raise
        raise BackupError(
            f"cannot write the dump {target}: {exc.strerror or exc}",
            hint="choose a writable --out or --backup-dir with free space",
        ) from None
    return target


def pg_restore(settings: Settings, dump: Path) -> None:
    """Load a ``pg_dump --format=custom`` file into the (empty) database of ``settings``."""
    run_tool("pg_restore", settings, ["--no-owner", "--exit-on-error", str(dump)])


# A forced restore drops the old contents in the load's own transaction (llm_proxy_db.safety.server_backup).
LOAD_REPLACES = True


# Drops every object of the current schema that is not an extension's (the schema itself, its
# owner and grants stay): relations, routines, then types; CASCADE takes what depends on them.
# An identity column's sequence is internal to its table ('i'): it goes with the table.
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
                       AND d.objid = c.oid AND d.deptype IN ('e', 'i'))
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
    restore_exe = find_tool(["pg_restore"], INSTALL_HINT)
    psql_exe = find_tool(["psql"], INSTALL_HINT)
    env, dbname = _client_env(settings)
    what = f"restore on {settings.describe()}"
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        psql = subprocess.Popen(
            [psql_exe, "--no-psqlrc", "--no-password", "--quiet", "-v", "ON_ERROR_STOP=1", "--file=-",
             f"--dbname={dbname}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=psql_err, env=env,
        )
        ran_all = _watch_for(psql, _LOADED)
        source = subprocess.Popen(
            [restore_exe, "--no-owner", "--no-privileges", "--exit-on-error", "--file=-", str(dump)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=restore_err, env=env,
        )
        assert psql.stdin is not None and source.stdout is not None
        try:
            try:
                psql.stdin.write(b"BEGIN;\n" + _DROP_SCHEMA_CONTENTS.encode())
                shutil.copyfileobj(source.stdout, psql.stdin)
                if source.wait() == 0 and _ran_all(psql, ran_all):  # only a complete script is committed
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
        raise BackupError(
            f"{what} failed, nothing was changed: {reason}",
            hint="the load ran in one transaction and was rolled back; fix the cause and restore again",
        )


# COMMIT is sent only once psql has run every statement of the dump (its index and key builds
# take seconds after the last byte is written): a COMMIT already queued in psql's input would
# be run by psql after this process was killed (SIGKILL), the restore then committed without
# its run-log entry, and the replaced database's log gone.  Killed before it, psql reads the
# end of its input and the transaction is rolled back: the database is as it was.
_LOADED = "llm-proxy-db: every statement of the dump ran"


def _watch_for(psql: subprocess.Popen[bytes], marker: str) -> threading.Event:
    """Drain psql's output (query results such as ``set_config``) in a thread; the event is
    set when ``marker`` is printed (by ``\\echo``) or psql's output ends."""
    seen = threading.Event()
    assert psql.stdout is not None
    stdout = psql.stdout

    def drain() -> None:
        for line in stdout:
            if line.decode(errors="replace").strip() == marker:
                seen.set()
        seen.set()

    threading.Thread(target=drain, daemon=True).start()
    return seen


def _ran_all(psql: subprocess.Popen[bytes], seen: threading.Event) -> bool:
    """Ask psql to print the marker after the dump's statements and wait for it: True when
    psql ran them all (False: it stopped at an error, its stderr says which)."""
    assert psql.stdin is not None
    psql.stdin.write(f"\\echo '{_LOADED}'\n".encode())
    psql.stdin.flush()
    while not seen.wait(0.2) and psql.poll() is None:  # short waits: a signal's handler runs between
        pass
    return psql.poll() is None


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
    env["PGOPTIONS"] = client_options(env.get("PGOPTIONS", ""))  # its lock waits bounded too
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    # URL.set(password=None) keeps the password (None means "unchanged"): build it without one.
    bare = SaURL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    return env, bare.render_as_string(hide_password=False)
