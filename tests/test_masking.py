"""Passwords are masked by structure (the password field), never by replacing text.

A password that is also an ordinary word, a number or a single letter must neither garble
the message nor be revealed by elimination; a property test tries any password on every
message path that shows a connection string.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_proxy_db import failures
from llm_proxy_db.cli.app import _scrub
from llm_proxy_db.config.masking import mask_connection_string, mask_message, mask_mysql_dsn, mask_url, parse_mysql_dsn
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connection_error
from llm_proxy_db.dialects import postgresql
from llm_proxy_db.errors import ConfigError

TRICKY = ["5432", "failed", "e", "postgres", "db", "connection", ":", "p@ss:w/rd?x=1", "***", "127.0.0.1"]


def _url(password: str, *, scheme: str = "postgres", database: str = "llm") -> str:
    return f"{scheme}://app:{quote(password, safe='')}@db.example:5432/{database}"


@pytest.mark.parametrize("password", TRICKY)
def test_url_password_field_is_masked_and_nothing_else_changes(password: str) -> None:
    masked = mask_url(_url(password))
    assert masked == "postgres://app:***@db.example:5432/llm"


@pytest.mark.parametrize("password", TRICKY)
def test_messages_keep_every_other_word(password: str) -> None:
    message = f"connection failed: cannot reach {_url(password)} on port 5432 (e)"
    wanted = "connection failed: cannot reach postgres://app:***@db.example:5432/llm on port 5432 (e)"
    assert mask_message(message) == wanted


@pytest.mark.parametrize("password", TRICKY)
def test_query_password_is_masked(password: str) -> None:
    url = f"postgresql://app@db:5432/llm?sslmode=require&password={quote(password, safe='')}"
    assert mask_url(url) == "postgresql://app@db:5432/llm?sslmode=require&password=***"


@pytest.mark.parametrize("password", [p for p in TRICKY if "/" not in p and "?" not in p])
def test_mysql_dsn_password_field(password: str) -> None:
    dsn = f"app:{password}@tcp(db:3306)/llm?parseTime=true"
    assert mask_mysql_dsn(dsn) == "app:***@tcp(db:3306)/llm?parseTime=true"
    parsed = parse_mysql_dsn(dsn)
    assert (parsed.user, parsed.password, parsed.protocol, parsed.address, parsed.dbname) == (
        "app",
        password,
        "tcp",
        "db:3306",
        "llm",
    )


def test_mysql_dsn_shapes() -> None:
    assert mask_mysql_dsn("tcp(h:3306)/db") == "tcp(h:3306)/db"
    assert mask_mysql_dsn("root@unix(/run/mysqld.sock)/db") == "root@unix(/run/mysqld.sock)/db"
    assert mask_mysql_dsn("u:p@/db?password=x&tls=true") == "u:***@/db?password=***&tls=true"
    assert mask_mysql_dsn("no dbname here") == "no dbname here"
    assert mask_connection_string("u:secret@tcp(h)/db") == "u:***@tcp(h)/db"
    assert mask_connection_string("plain text") == "plain text"
    with pytest.raises(ValueError):
        parse_mysql_dsn("nothing")


@pytest.mark.parametrize("password", TRICKY)
def test_malformed_url_message(password: str) -> None:
    with pytest.raises(ConfigError) as raised:
        postgresql.parse_database_url(_url(password, scheme="mysql"))
    assert "app:***@db.example:5432/llm" in raised.value.message


@pytest.mark.parametrize("password", TRICKY)
def test_display_url(password: str) -> None:
    settings = Settings(driver="postgres", database_url=postgresql.parse_database_url(_url(password)))
    assert settings.describe() == "postgresql+psycopg://app:***@db.example:5432/llm"


def _paths(url: str) -> list[tuple[str, str]]:
    """(masked output, expected) for every message path that shows a connection string."""
    settings = Settings(driver="postgres", database_url=postgresql.parse_database_url(url))
    expected = "postgresql+psycopg://app:***@db.example:5432/llm"
    driver = RuntimeError(f"could not connect to {url}: connection failed on port 5432")
    wanted_driver = "could not connect to postgres://app:***@db.example:5432/llm: connection failed on port 5432"
    return [
        (settings.describe(), expected),
        (connection_error(settings, driver).message, f"cannot open database {expected}: {wanted_driver}"),
        (_scrub(driver), wanted_driver),
        (mask_message(f"dsn app:{quote(url[-3:], safe='')}@tcp(h:1)/llm failed"), "dsn app:***@tcp(h:1)/llm failed"),
    ]


@given(st.text(min_size=1, max_size=30))
def test_any_password_on_any_path_is_masked_and_the_rest_intact(password: str) -> None:
    for shown, expected in _paths(_url(password)):
        assert shown == expected


def test_failures_mask_urls_in_driver_messages() -> None:
    import sqlite3

    error = failures.translate(sqlite3.DatabaseError("file is not a database: postgres://u:e@h/d"))
    assert error is not None and "u:***@h/d" in error.message


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("host=h password=X dbname=d", "host=h password=*** dbname=d"),
        ("host=h password = 'a b\\' c' dbname=d", "host=h password = *** dbname=d"),
        ("dbname=d PASSWORD='unclosed rest", "dbname=d PASSWORD=***"),
        ("host=h dbname=d", "host=h dbname=d"),
    ],
)
def test_libpq_key_value_passwords_are_masked(text: str, masked: str) -> None:
    assert mask_connection_string(text) == masked
    assert mask_message(f"bad value {text}") == f"bad value {masked}"
