"""DB_DRIVER=mysql: the service's Go DSN and mysql:// URLs, masked everywhere (no server needed)."""

from __future__ import annotations

import pytest

from llm_proxy_db.dialects import mysql
from llm_proxy_db.dialects.mysql import client as mysql_client
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError
from llm_proxy_db.service import goose


@pytest.mark.parametrize(
    ("raw", "shown", "query"),
    [
        ("llmproxy:secret@tcp(db:3306)/llmproxy?parseTime=true", "llmproxy:***@db:3306/llmproxy", {}),
        ("u:p@ss@tcp(h)/d?tls=skip-verify&loc=Local", "u:***@h:3306/d", {"ssl_check_hostname": "false"}),
        ("u:pw@tcp([::1]:3307)/d?tls=true&timeout=5s", "u:***@[::1]:3307/d", {"ssl_check_hostname": "true"}),
        ("root@unix(/run/mysqld/mysqld.sock)/test", "root@localhost/test", {"unix_socket": "/run/mysqld/mysqld.sock"}),
        ("mysql://root@127.0.0.1:3306/test", "root@127.0.0.1:3306/test", {}),
        ("mariadb://a:b@h/d?charset=utf8mb4,utf8", "a:***@h/d", {"charset": "utf8mb4"}),
    ],
)
def test_dsn_and_url_forms(raw: str, shown: str, query: dict[str, str]) -> None:
    settings = resolve_settings(env={"DB_DRIVER": "mysql", "DATABASE_URL": raw})
    assert settings.is_mysql and settings.dialect_name == "mysql"
    assert settings.describe().startswith(f"mysql+pymysql://{shown}")
    url = settings.sqlalchemy_url()
    assert {key: url.query[key] for key in query} == query


def test_the_driver_follows_the_url_given_on_the_command_line() -> None:
    assert resolve_settings(database_url="u:p@tcp(h:3306)/d", env={}).is_mysql
    assert resolve_settings(database_url="mysql://u@h/d", env={}).is_mysql
    assert resolve_settings(database_url="postgres://u@h/d", env={}).driver == "postgres"
    with pytest.raises(ConfigError, match="does not go with --db-driver postgres"):
        resolve_settings("postgres", database_url="u:p@tcp(h:3306)/d", env={})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("u:topsecret@tcp(h:3306)", "malformed MySQL DATABASE_URL 'u:***@tcp(h:3306)'"),
        ("u:topsecret@tcp(h:3306)/", "names no database"),
        ("u:topsecret@pipe(x)/d", "unsupported network 'pipe'"),
        ("u:topsecret@tcp(h)/d?tls=custom", "registered in the Go service"),
        ("u:topsecret@tcp(h)/d?timeout=soon", "is not a duration"),
        ("postgres://u:topsecret@h/d", "unsupported URL scheme"),
        ("u:topsecret@tcp(h:port)/d", "malformed"),
        ("u:topsecret@tcp(h)/d?bogus-option=1", "malformed option 'bogus-option'"),
        ("host=h password=topsecret dbname=d", "malformed MySQL DATABASE_URL 'host=h password=*** dbname=d'"),
    ],
)
def test_bad_values_are_one_clear_error_without_the_password(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(env={"DB_DRIVER": "mysql", "DATABASE_URL": raw})
    assert message in caught.value.message
    assert "topsecret" not in caught.value.message


def test_no_url_names_the_dsn_form() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_settings(env={"DB_DRIVER": "mysql"})
    assert "tcp(host:3306)" in (caught.value.hint or "")


def test_the_dump_command_keeps_the_password_off_the_command_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(mysql_client, "dump_client", lambda: "/usr/bin/mariadb-dump")
    settings = resolve_settings(env={"DB_DRIVER": "mysql", "DATABASE_URL": "u:topsecret@tcp(h:3307)/d"})
    command, env = mysql.backup_command(settings, tmp_path / "x.sql")
    assert "--single-transaction" in command and command[-1] == "d"
    assert "--host=h" in command and "--port=3307" in command
    assert not any("topsecret" in part for part in command) and env == {"MYSQL_PWD": "topsecret"}


def test_no_dump_client_is_a_clear_backup_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(mysql_client, "dump_client", lambda: None)
    settings = resolve_settings(env={"DB_DRIVER": "mysql", "DATABASE_URL": "u@tcp(h)/d"})
    with pytest.raises(Exception, match="no MySQL dump client"):
        mysql.backup_command(settings, tmp_path / "x.sql")


def test_goose_bookkeeping_data() -> None:
    """The mapping the coexistence code uses: below 0006 nothing (file 1 already says api_key)."""
    assert {rev: goose.goose_version_at("mysql", rev) for rev in ("0005", "0006", "0007")} == {
        "0005": 0, "0006": 4, "0007": 5,
    }
    assert "goose_db_version" in goose.GOOSE_TABLE_DDL["mysql"]


def test_pymysql_options_in_the_url_are_kept() -> None:
    dsn = "u@tcp(h)/d?ssl_ca=%2Fca.pem&parseTime=true"
    settings = resolve_settings(env={"DB_DRIVER": "mysql", "DATABASE_URL": dsn})
    assert settings.sqlalchemy_url().query["ssl_ca"] == "/ca.pem"
    assert "parseTime" not in settings.sqlalchemy_url().query


def test_a_server_variable_in_the_dsn_is_accepted_as_the_go_driver_does() -> None:
    """The Go driver sets unknown options as session system variables: a service DSN with
    ``wait_timeout=100`` is valid, so it is accepted (and not applied to our session)."""
    dsn = "u:p@tcp(h)/d?wait_timeout=100&parseTime=true"
    settings = resolve_settings(env={"DB_DRIVER": "mysql", "DATABASE_URL": dsn})
    assert settings.database_url is not None and "wait_timeout" not in dict(settings.database_url.query)
