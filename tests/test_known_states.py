"""The known states are derived from the revisions; these tests prove the derivation right.

Each field shape is built from the service's own DDL (``tests/legacy.py``) and must have
exactly the fingerprint derived for its state, and no other state's: otherwise adoption
would either refuse a real database or stamp the wrong revision.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from llm_proxy_db.adoption import known_states as ks
from llm_proxy_db.database import connect
from llm_proxy_db.schema.fingerprint import fingerprint
from llm_proxy_db.schema.fingerprint_diff import diff
from llm_proxy_db.schema.head import head_metadata
from tests import legacy


@pytest.mark.parametrize("shape", legacy.params())
def test_field_shape_has_the_derived_fingerprint_of_its_state(shape, tmp_path, request) -> None:
    """Reference DDL and derived fingerprint agree, and no other state has that fingerprint."""
    settings = legacy.settings_for(shape.dialect, tmp_path, request)
    with connect(settings) as connection:
        legacy.build(connection, shape)
        states = {state.name: state for state in ks.known_states(connection)}
        actual = fingerprint(connection)
    expected = states[shape.expected_state]
    assert diff(actual, expected.fingerprint) == [], f"Differences from {expected.name}"
    others = [name for name, state in states.items() if state.fingerprint == actual]
    assert {states[name].revision for name in others} == {expected.revision}


def test_known_states_are_distinct(settings) -> None:
    """Two states with one fingerprint but different revisions could never be told apart."""
    with connect(settings) as connection:
        states = ks.known_states(connection)
    for i, first in enumerate(states):
        for second in states[i + 1 :]:
            assert first.fingerprint != second.fingerprint, (first.name, second.name)


def test_head_state_equals_the_head_metadata(settings) -> None:
    """The last revision's derived fingerprint is the schema declared in schema.py."""
    with connect(settings) as connection:
        head_metadata(connection.dialect.name).create_all(connection)
        connection.commit()
        created = fingerprint(connection)
        derived = ks.revision_fingerprints(connection, derive=True)["0007"]
    assert diff(created, derived) == []


def test_states_map_to_the_revision_to_stamp(settings) -> None:
    """goose-1 is stamped 0002; the api_key variants at the revision of the same shape."""
    with connect(settings) as connection:
        states = {state.name: state for state in ks.known_states(connection)}
    assert states["goose-1"].revision == "0002"
    if settings.is_mysql:  # MySQL's goose files: 1 already says api_key, 5 widens the CHECK
        assert states["goose-1"].goose_versions == () and states["goose-1-api_key"].goose_versions == (1,)
        assert states["0006"].goose_versions == (4,) and states["0007"].goose_versions == (5,)
        assert (states["goose-5-mysql8"].revision, states["goose-5-mysql8"].goose_versions) == ("0006", (5,))
        return
    assert states["goose-1"].goose_versions == (1,)
    assert states["0007"].goose_versions == (6,)
    if settings.is_sqlite:
        assert not any(name.endswith("-api_key") for name in states)
    else:
        assert [states[f"{n}-api_key"].revision for n in ("goose-1", "0003", "0004")] == [
            "0002",
            "0003",
            "0004",
        ]
        assert "0005-api_key" not in states and states["0006"].goose_versions == (4, 5)


@pytest.mark.postgresql
def test_postgresql_derivation_leaves_nothing_behind(postgres_url) -> None:
    """The scratch schema lives in a rolled-back transaction; results are cached."""
    from llm_proxy_db.config.settings import Settings

    settings = Settings(driver="postgres", database_url=postgres_url)
    with connect(settings) as connection:
        first = ks.revision_fingerprints(connection, derive=True)
        ks._cache.clear()
        again = ks.revision_fingerprints(connection, derive=True)
        assert ks.revision_fingerprints(connection, derive=True) is again
        schemas = connection.execute(
            sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'llm_proxy_scratch%'")
        ).all()
        tables = sa.inspect(connection).get_table_names()
    assert first == again
    assert schemas == [] and tables == []


@pytest.mark.postgresql
def test_postgresql_derivation_without_create_privilege_refuses(postgres_url, tmp_path, monkeypatch) -> None:
    """A user who may not create the scratch schema gets a clear refusal, and nothing changes.

    (Without committed known-state data for the server: with it, nothing is derived.)
    """
    from llm_proxy_db import commands
    from llm_proxy_db.adoption import known_state_data, known_state_files
    from llm_proxy_db.config.settings import Settings
    from llm_proxy_db.errors import SchemaMismatchError

    monkeypatch.setattr(known_state_data, "DATA_DIR", tmp_path / "no-data")
    monkeypatch.setattr(known_state_files, "DATA_DIR", tmp_path / "no-data")
    monkeypatch.setattr(known_state_data, "_loaded", {})

    role = f"llm_proxy_reader_{uuid.uuid4().hex[:8]}"
    owner = Settings(driver="postgres", database_url=postgres_url)
    legacy.create(owner, legacy.postgresql_shapes()[0])
    with connect(owner) as connection:
        connection.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        connection.exec_driver_sql(f"REVOKE CREATE ON DATABASE {postgres_url.database} FROM PUBLIC")
        connection.commit()
    try:
        reader = Settings(driver="postgres", database_url=postgres_url.set(username=role))
        ks._cache.clear()
        with pytest.raises(SchemaMismatchError, match="CREATE privilege|cannot derive") as refused:
            commands.adopt(reader)
        assert "GRANT CREATE" in (refused.value.hint or "")
        ks._cache.clear()
        assert commands.status(reader).detected_state.startswith("undetermined: cannot derive")
    finally:
        ks._cache.clear()
        with connect(owner) as connection:
            connection.exec_driver_sql(f"DROP OWNED BY {role}")
            connection.exec_driver_sql(f"DROP ROLE {role}")
            connection.commit()
