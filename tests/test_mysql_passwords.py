"""MySQL passwords with characters outside latin-1 (and ones inside it, spelled as UTF-8 by
the service and the ``mariadb`` client): the migration's connection, the fast startup read,
the scratch databases and the dump and load tools all log in with them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands, quick_status
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.safety import backup
from tests.safety_helpers import HEAD, revision_of
from tests.seed import seed

pytestmark = pytest.mark.mysql


@pytest.fixture(params=["pässwörd", "price-10€-✓"], ids=["latin1", "beyond-latin1"])
def user_settings(request: pytest.FixtureRequest, mysql_url: sa.engine.URL) -> Iterator[Settings]:
    """A user created on the shared server with a non-ASCII password, owning the test's database."""
    user = f"llmproxy_pw_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    password = request.param
    with admin.connect() as connection:
        connection.exec_driver_sql("SET NAMES utf8mb4")
        connection.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        connection.exec_driver_sql(f"GRANT ALL ON `{mysql_url.database}`.* TO '{user}'@'%%'")
        # The scratch databases of verify and rehearse are named after the database.
        connection.exec_driver_sql(f"GRANT ALL ON `{mysql_url.database}\\_%%`.* TO '{user}'@'%%'")
        connection.commit()
    try:
        yield Settings(driver="mysql", database_url=mysql_url.set(username=user, password=password))
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
            connection.commit()
        admin.dispose()


def test_a_non_ascii_password_migrates_reads_and_backs_up(user_settings: Settings, tmp_path: Path) -> None:
    commands.upgrade(user_settings, no_backup=True)
    assert quick_status.current_head(user_settings) is not None  # the bare-driver read
    with connect(user_settings) as connection:
        seed(connection, projects=2, tokens=4, events=3)
        before = connection.exec_driver_sql("SELECT count(*) FROM tokens").scalar()
    dump = backup.backup(user_settings, tmp_path / "out.sql")
    result = backup.restore(user_settings, dump, backup_dir=tmp_path / "safety", force=True)
    assert result.revision == HEAD == revision_of(user_settings)
    with connect(user_settings) as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM tokens").scalar() == before == 4


def test_a_non_ascii_password_makes_scratch_databases(user_settings: Settings) -> None:
    from llm_proxy_db.dialects.mysql import scratch_database

    with scratch_database(user_settings.sqlalchemy_url(), "pw") as scratch, connect(scratch) as connection:
        assert connection.exec_driver_sql("SELECT DATABASE()").scalar() == scratch.sqlalchemy_url().database
