"""A plain MySQL ``DATABASE_URL`` is read without SQLAlchemy on the fast path (issue 22).

:func:`~llm_proxy_db.dialects.mysql.connection.plain_connect_args` must give exactly the
PyMySQL arguments and the description the full path computes through SQLAlchemy, and step
aside (None) for everything else; the commands it answers must print what the full CLI prints.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.engine import URL
from typer.testing import CliRunner

from llm_proxy_db import commands
from llm_proxy_db.cli import app as cli
from llm_proxy_db.cli import fast_path
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects.mysql import writable
from llm_proxy_db.dialects.mysql.connection import connect_args, parse_database_url, plain_connect_args
from tests.test_fast_commands import ADOPT_AND_REHEARSE, READS, _with_history
from tests.test_fast_path import COMMANDS, _same_output
from tests.topology_mysql import Topology, replicated, replication_servers  # noqa: F401 - fixtures

PLAIN = [
    "root@tcp(127.0.0.1:3306)/lat?parseTime=true",
    "root@tcp(127.0.0.1:3306)/lat?parseTime=true&loc=Local&collation=utf8mb4_unicode_ci",
    "u:secret@tcp(db.example.com)/app",  # default port
    "u:p%40ss@tcp(h:3307)/app",  # a DSN's password is taken as written: %40 stays
    "u:p@ss:w/rd@tcp(h:3307)/app",  # @, : and / in a DSN's password
    "u:€ä%@tcp(h:1)/app",
    "user.name:pw@tcp([::1]:3310)/app",  # IPv6
    "u:pw@tcp([2001:db8::7])/app",  # IPv6, default port
    "u@tcp(h)/app",  # no password
    "u:@tcp(h)/app",  # an empty password
    "/app",  # no user, no address: 127.0.0.1:3306
    "@tcp(h:3306)/app",  # no user
    "u:pw@/app",  # no address
    "u:pw@TCP(h:3306)/app",
    "  u:pw@tcp(h:3306)/app  ",
    "mysql://u:pw@h:3306/app",
    "mysql://u:pw@h/app?parseTime=true",  # the URL form without a port: no port argument
    "mariadb://u:p%40ss%2Fw%3Ad@h:3306/app",  # percent-encoded @, / and :
    "mysql://u:p@ss/w:d@h:3306/app",  # the same, as written
    "mysql://u:%E2%82%AC%C3%A4@h:3306/app",  # € and ä, encoded
    "mysql://u:€ä%@h:3306/app",  # as written, with a lone %
    "mysql://u@[::1]:3310/app",
    "mysql://u:pw@[2001:db8::7]/app",
    "mysql://h:3306/app",  # no user
    "mysql://u@h:3306/a_p-p$?parseTime=true&loc=UTC",
]

NOT_PLAIN = [
    "u:pw@tcp(h:3306)/app?tls=true",
    "u:pw@tcp(h:3306)/app?tls=false",
    "u:pw@tcp(h:3306)/app?timeout=5s",
    "u:pw@tcp(h:3306)/app?charset=utf8mb4",
    "u:pw@tcp(h:3306)/app?wait_timeout=100",  # a system variable
    "u:pw@tcp(h:3306)/app?ssl_ca=/ca.pem",
    "u:pw@tcp(h:3306)/app?connect_timeout=10",
    "u:pw@unix(/run/mysqld/mysqld.sock)/app",
    "u:pw@tcp(h:3306)/donn%C3%A9es",  # a database name with escapes
    "u:pw@tcp(h:3306)/données",
    "us%40r:pw@tcp(h:3306)/app",  # a user with escapes
    "üser:pw@tcp(h:3306)/app",
    ":pw@tcp(h:3306)/app",  # a password without a user
    "u:pw@tcp(h:3306)/",  # no database: the full path refuses it
    "u:pw@tcp(h:port)/app",
    "u:pw@tcp(::1)/app",  # an IPv6 address without brackets
    "mysql+pymysql://u:pw@h:3306/app",
    "mysql://u:pw@h:3306/app?charset=utf8mb4",
    "mysql://u:pw@h:3306/app?ssl_ca=/ca.pem",
    "mysql://u:pw@h:3306/app?unix_socket=/s",
    "mysql://u:pw@h:3306/donn%C3%A9es",
    "mysql://u:@h:3306/app",  # an empty password in the URL form
    "mysql://@h:3306/app",
    "mysql://u:pw@h:3306/app#x",
    "mysql://u:pw@h:3306",
    "postgres://u:pw@h:5432/app",
    "garbage",
]


@pytest.mark.parametrize("raw", PLAIN)
def test_plain_urls_give_sqlalchemys_arguments_and_description(raw: str) -> None:
    """For every plain form, the arguments PyMySQL gets and the description are exactly the
    full path's (SQLAlchemy's ``create_connect_args`` and ``Settings.describe``)."""
    url = parse_database_url(raw)
    expected = (connect_args(url), Settings(driver="mysql", database_url=url).describe())
    assert plain_connect_args(raw) == expected


@pytest.mark.parametrize("raw", NOT_PLAIN)
def test_other_urls_take_the_settings_route(raw: str) -> None:
    assert plain_connect_args(raw) is None


def _plain_forms(url: URL) -> list[str]:
    """The Go DSN and the ``mysql://`` URL of ``url``'s database, without a query."""
    auth = f"{url.username}:{url.password}" if url.password else str(url.username)
    return [f"{auth}@tcp({url.host}:{url.port})/{url.database}?parseTime=true&loc=UTC",
            f"mysql://{auth}@{url.host}:{url.port}/{url.database}"]


@pytest.mark.mysql
@pytest.mark.parametrize("command", COMMANDS + READS[:4] + ADOPT_AND_REHEARSE, ids=" ".join)
def test_plain_mysql_fast_output_equals_the_full_cli(mysql_url: URL, command: list[str]) -> None:
    """At head on MariaDB, each plain form is answered fast, with the full CLI's exact text
    (the rehearsal included: its writable check is read with the bare driver)."""
    settings = Settings(driver="mysql", database_url=mysql_url)
    _with_history(settings)
    for raw in _plain_forms(mysql_url):
        argv = ["--db-driver", "mysql", "--database-url", raw, *command]
        fast = fast_path.output_at_head(argv)
        assert fast is not None, raw
        full = CliRunner().invoke(cli.app, argv, env={"LLM_PROXY_DEBUG": ""})
        assert full.exit_code == 0, full.output
        assert _same_output(fast, full.stdout), (fast, full.stdout)


@pytest.mark.mysql
@pytest.mark.parametrize("command", [["migrate", "status"], ["setup"], ["migrate", "history"], ["migrate", "log"]],
                         ids=" ".join)
def test_a_postgres_driver_with_a_mysql_url_is_the_full_paths(mysql_url: URL, monkeypatch, command) -> None:
    """DB_DRIVER=postgres and a MySQL DSN in DATABASE_URL: the full path refuses it (exit 2);
    the fast path never answers in its place (it used to read the variable as an explicit
    ``--database-url``, whose form implies its driver)."""
    commands.upgrade(Settings(driver="mysql", database_url=mysql_url))
    env = {"DB_DRIVER": "postgres", "DATABASE_URL": _plain_forms(mysql_url)[0]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert fast_path.output_at_head(command) is None
    assert CliRunner().invoke(cli.app, command, env=env).exit_code == 2


@pytest.mark.postgresql
@pytest.mark.parametrize("command", [["migrate", "status"], ["setup"], ["migrate", "history"], ["migrate", "log"]],
                         ids=" ".join)
def test_a_mysql_driver_with_a_postgres_url_is_the_full_paths(postgres_url: URL, monkeypatch, command) -> None:
    """DB_DRIVER=mysql and a plain PostgreSQL URL in DATABASE_URL: refused by the full path
    (exit 2), never answered fast."""
    commands.upgrade(Settings(driver="postgres", database_url=postgres_url))
    env = {"DB_DRIVER": "mysql", "DATABASE_URL": postgres_url.set(drivername="postgresql").render_as_string(False)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert fast_path.output_at_head(command) is None
    assert CliRunner().invoke(cli.app, command, env=env).exit_code == 2


@pytest.mark.mysql
@pytest.mark.parametrize("command", [["migrate", "status"], ["migrate", "status", "--json"], ["setup"],
                                     ["migrate", "history"], ["migrate", "rehearse"]], ids=" ".join)
def test_a_fresh_process_answers_mariadb_without_sqlalchemy(mysql_url: URL, command: list[str]) -> None:
    """``DB_DRIVER=mysql DATABASE_URL=<Go DSN>``: the entry point answers at head in a process
    of its own without importing SQLAlchemy, Alembic or Typer, with the full CLI's text."""
    settings = Settings(driver="mysql", database_url=mysql_url)
    _with_history(settings)
    dsn = _plain_forms(mysql_url)[0]
    probe = (
        "import sys; from llm_proxy_db.cli import fast_path; fast_path.main(); "
        "loaded = [m for m in ('alembic', 'sqlalchemy', 'typer') if m in sys.modules]; "
        "sys.stderr.write(repr(loaded))"
    )
    env = {"DB_DRIVER": "mysql", "DATABASE_URL": dsn, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True, env=env)
    assert done.stderr == "[]"
    full = CliRunner().invoke(cli.app, command, env={**env, "LLM_PROXY_DEBUG": ""})
    assert full.exit_code == 0, full.output
    assert done.stdout == full.stdout


@pytest.mark.mysql
def test_the_bare_topology_read_is_sqlalchemys(mysql_url: URL) -> None:
    """What the server is part of and whether it takes writes, read with the bare driver, are
    what the SQLAlchemy reads give (a lone writable server here)."""
    settings = Settings(driver="mysql", database_url=mysql_url)
    kwargs = connect_args(mysql_url)
    assert writable.describe_topology_at(kwargs) == writable.describe_topology(settings)
    assert writable.surely_writable_at(kwargs) is True


def test_an_unreachable_server_has_no_topology_and_is_not_surely_writable() -> None:
    kwargs, _ = plain_connect_args("u:pw@tcp(127.0.0.1:1)/app") or ({}, "")
    assert writable.describe_topology_at(kwargs) is None
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure: rehearsal_at_head steps aside
        writable.surely_writable_at(kwargs)


@pytest.mark.mysql
def test_a_replica_is_read_alike_and_never_rehearsed_fast(replicated: Topology) -> None:  # noqa: F811
    """On a replica (read_only=ON, a replicating channel) the bare topology equals
    SQLAlchemy's, ``migrate status`` prints it as the full CLI does, and the rehearsal is left
    to the full path, which refuses it."""
    primary, replica = replicated.urls
    commands.upgrade(Settings(driver="mysql", database_url=primary))
    import time

    deadline = time.monotonic() + 120
    raw = _plain_forms(replica)[0]
    argv = ["--db-driver", "mysql", "--database-url", raw]
    while fast_path.output_at_head([*argv, "migrate", "status"]) is None and time.monotonic() < deadline:
        time.sleep(0.5)  # the replica replays the upgrade
    settings = Settings(driver="mysql", database_url=replica)
    found = writable.describe_topology_at(connect_args(replica))
    assert found is not None and found == writable.describe_topology(settings)
    assert writable.surely_writable_at(connect_args(replica)) is False
    for command in (["migrate", "status"], ["migrate", "status", "--json"]):
        fast = fast_path.output_at_head([*argv, *command])
        full = CliRunner().invoke(cli.app, [*argv, *command], env={"LLM_PROXY_DEBUG": ""})
        assert full.exit_code == 0, full.output
        assert fast == full.stdout
    assert fast_path.output_at_head([*argv, "migrate", "rehearse"]) is None
    assert CliRunner().invoke(cli.app, [*argv, "migrate", "rehearse"]).exit_code == 3
