"""Configuration: the service's variables, CLI overrides, URL forms and password masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_proxy_db.config.settings import mask_url_text
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError


def test_defaults_to_the_services_sqlite_file():
    settings = resolve_settings(env={})
    assert settings.is_sqlite
    assert settings.database_path == Path("data/llm-proxy.db")
    assert settings.dialect_name == "sqlite"


def test_environment_names_the_sqlite_file():
    settings = resolve_settings(env={"DB_DRIVER": "sqlite", "DATABASE_PATH": "/srv/x.db"})
    assert settings.database_path == Path("/srv/x.db")


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:secret@db:5432/llm",
        "postgresql://u:secret@db:5432/llm",
        "postgresql+psycopg://u:secret@db:5432/llm",
    ],
)
def test_every_postgres_url_form_uses_psycopg3(url):
    settings = resolve_settings(env={"DB_DRIVER": "postgres", "DATABASE_URL": url})
    assert settings.sqlalchemy_url().drivername == "postgresql+psycopg"
    assert settings.sqlalchemy_url().database == "llm"
    assert "secret" not in settings.display_url()
    assert "secret" not in settings.describe()


def test_explicit_values_override_the_environment():
    env = {"DB_DRIVER": "sqlite", "DATABASE_PATH": "env.db"}
    assert resolve_settings(database_path="cli.db", env=env).database_path == Path("cli.db")
    settings = resolve_settings(database_url="postgres://u@h/db", env=env)
    assert settings.driver == "postgres"


def test_query_parameters_are_kept():
    settings = resolve_settings(env={"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://u@h/db?sslmode=disable"})
    assert settings.sqlalchemy_url().query == {"sslmode": "disable"}


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"DB_DRIVER": "oracle"}, "unknown database driver 'oracle'"),
        ({"DB_DRIVER": "mysql"}, "DB_DRIVER is mysql but no database URL is set"),
        ({"DB_DRIVER": "postgres"}, "no database URL"),
        ({"DB_DRIVER": "postgres", "DATABASE_URL": "mysql://u@h/db"}, "unsupported URL scheme"),
        ({"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://u@h"}, "names no database"),
        ({"DB_DRIVER": "postgres", "DATABASE_URL": "not a url"}, "malformed"),
        ({"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://u:pw@h:port/db"}, "malformed"),
    ],
)
def test_bad_configuration_is_one_clear_error(env, fragment):
    with pytest.raises(ConfigError) as excinfo:
        resolve_settings(env=env)
    assert fragment in excinfo.value.message
    assert "pw" not in excinfo.value.message


def test_mask_url_text_hides_passwords_in_unparsable_urls():
    assert mask_url_text("postgres://u:pw@h:port/db") == "postgres://u:***@h:port/db"
    assert mask_url_text("postgres://u@h/db") == "postgres://u@h/db"
    assert mask_url_text("no url here") == "no url here"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"database_path": "x.db", "database_url": "postgres://u@h/db"}, "both a SQLite path and a PostgreSQL URL"),
        ({"db_driver": "sqlite", "database_url": "postgres://u@h/db"}, "--database-url does not go with"),
        ({"db_driver": "postgres", "database_path": "x.db"}, "--database-path does not go with"),
    ],
)
def test_contradicting_explicit_values_are_refused(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        resolve_settings(env={}, **kwargs)


def test_an_explicit_path_wins_over_a_postgres_environment():
    env = {"DB_DRIVER": "postgres", "DATABASE_URL": "postgres://u@h/db"}
    assert resolve_settings(database_path="cli.db", env=env).database_path == Path("cli.db")


@pytest.mark.parametrize(
    ("url", "password", "host"),
    [
        ("postgres://u:S3c@retPW@127.0.0.1:5999/test", "S3c@retPW", "127.0.0.1"),
        ("postgres://u@127.0.0.1/test?password=S3cretPW&sslmode=disable", "S3cretPW", "127.0.0.1"),
        ("postgres://u:p%40ss@h/db", "p@ss", "h"),
    ],
)
def test_passwords_in_every_form_are_parsed_like_the_service_and_masked(url, password, host):
    settings = resolve_settings(database_url=url, env={})
    assert settings.sqlalchemy_url().password == password
    assert settings.sqlalchemy_url().host == host
    assert password not in settings.describe()
    assert "S3c" not in settings.describe()


@pytest.mark.parametrize("kwargs", [
    {"env": {"DB_DRIVER": "postgres", "DATABASE_URL": "host=h port=5432 password=topsecret dbname=d"}},
    {"database_url": "host=h password='top secret' dbname=d"},
    {"db_driver": "postgres", "database_url": "dbname=d password = topsecret"},
])
def test_a_libpq_key_value_string_is_refused_for_postgres_without_its_password(kwargs):
    with pytest.raises(ConfigError) as caught:
        resolve_settings(**kwargs)
    assert "libpq key=value" in caught.value.message and "MySQL" not in caught.value.message
    assert "topsecret" not in caught.value.message and "top secret" not in caught.value.message
    assert "postgres://" in (caught.value.hint or "")
