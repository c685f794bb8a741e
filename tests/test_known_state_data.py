"""The committed known-state fingerprints equal what the revisions produce, and are never
trusted when they may not (issue 11: adoption without running the revisions at run time)."""

from __future__ import annotations

import json
import shutil

import pytest

from llm_proxy_db import commands
from llm_proxy_db.adoption import known_state_data, known_state_files, known_states
from llm_proxy_db.adoption.adopt import KNOWN, detect
from llm_proxy_db.database import connect
from tests import legacy


@pytest.fixture
def fresh_caches(monkeypatch):
    """Each test reads the data files and derives afresh."""
    monkeypatch.setattr(known_state_data, "_loaded", {})
    monkeypatch.setattr(known_states, "_cache", {})


def test_committed_data_equals_what_the_revisions_produce(settings, fresh_caches) -> None:
    """On SQLite, PostgreSQL and MariaDB: the file holds exactly the derived fingerprints."""
    with connect(settings) as connection:
        family = known_state_data.family_of(connection)
        reason = known_state_data.unusable_reason(connection.dialect.name, family)
        assert reason is None, f"{reason}: run `{known_state_data.UPDATE_COMMAND}`"
        committed = known_state_data.load(connection)
        derived = known_states.revision_fingerprints(connection, derive=True)
    assert committed is not None
    assert known_state_data.differences(committed, derived) == []
    assert committed == derived


def test_the_data_round_trips(sqlite_settings, fresh_caches) -> None:
    with connect(sqlite_settings) as connection:
        derived = known_states.revision_fingerprints(connection, derive=True)
    for print_ in derived.values():
        data = known_state_data.to_data(print_)
        assert known_state_data.from_data(json.loads(json.dumps(data))) == print_


def test_adoption_uses_the_data_without_deriving(sqlite_settings, fresh_caches, monkeypatch) -> None:
    """A known legacy shape is adopted without running a revision on a scratch database."""
    legacy.create(sqlite_settings, legacy.sqlite_shapes()[1])  # L1

    def refuse(connection):  # noqa: ANN001, ANN202
        raise AssertionError("derived at run time")

    monkeypatch.setattr(known_states, "_derive", refuse)
    result = commands.setup(sqlite_settings, no_backup=True)
    assert result.adopted == "0002" and result.after == known_states.revisions.head_revision()


def test_stale_or_missing_data_is_not_used(tmp_path, fresh_caches) -> None:
    """Another revision file, another SQLAlchemy series, a missing file or family: unusable."""
    directory = tmp_path / "states"
    directory.mkdir()
    assert "missing" in (known_state_data.unusable_reason("sqlite", "sqlite", directory) or "")
    shutil.copy(known_state_data.data_file("sqlite"), directory)
    assert known_state_data.unusable_reason("sqlite", "sqlite", directory) is None
    assert "no entry for sqlite-9" in (known_state_data.unusable_reason("sqlite", "sqlite-9", directory) or "")
    path = known_state_data.data_file("sqlite", directory)
    document = json.loads(path.read_text())
    document["revision_files"]["0005_token_surrogate_id.py"] = "0" * 64
    path.write_text(json.dumps(document))
    assert "other revision files" in (known_state_data.unusable_reason("sqlite", "sqlite", directory) or "")
    document["sqlalchemy"] = "1.4"
    path.write_text(json.dumps(document))
    assert "SQLAlchemy 1.4" in (known_state_data.unusable_reason("sqlite", "sqlite", directory) or "")
    path.write_text("{not json")
    assert "cannot be read" in (known_state_data.unusable_reason("sqlite", "sqlite", directory) or "")


def test_without_data_the_states_are_derived(sqlite_settings, tmp_path, fresh_caches, monkeypatch) -> None:
    """The fallback: no data file, and the known states are derived as before."""
    monkeypatch.setattr(known_state_files, "DATA_DIR", tmp_path / "nowhere")
    legacy.create(sqlite_settings, legacy.sqlite_shapes()[0])  # L0
    with connect(sqlite_settings) as connection:
        assert known_state_data.load(connection) is None
        found = detect(connection)
    assert found.kind == KNOWN and found.state is not None and found.state.name == "0001"
    assert known_states._cache  # derived


def test_a_shape_the_data_misses_is_derived_before_refusing(sqlite_settings, fresh_caches, monkeypatch) -> None:
    """Committed data that does not match (another server's rendering, say) never refuses a
    database the revisions' real fingerprints recognise: detection derives and tries again."""
    legacy.create(sqlite_settings, legacy.sqlite_shapes()[1])  # L1 = 0002
    with connect(sqlite_settings) as connection:
        real = known_states.revision_fingerprints(connection, derive=True)
        known_states._cache.clear()
        renamed = real["0002"].with_renamed_column("projects", "openai_api_key", "renamed")
        wrong = {**real, "0002": renamed}
        monkeypatch.setattr(known_state_data, "load", lambda _connection: wrong)
        found = detect(connection)
    assert found.kind == KNOWN and found.state is not None and found.state.revision == "0002"
    assert known_states._cache  # derived before answering


def test_writing_drops_entries_of_other_revision_files(tmp_path, sqlite_settings, fresh_caches) -> None:
    directory = tmp_path / "states"
    with connect(sqlite_settings) as connection:
        prints = known_states.revision_fingerprints(connection, derive=True)
    assert known_state_data.write("sqlite", "sqlite", "3", prints, directory) == []
    assert known_state_data.write("sqlite", "other", "3", prints, directory) == []
    path = known_state_data.data_file("sqlite", directory)
    document = json.loads(path.read_text())
    document["revision_files"] = {}
    path.write_text(json.dumps(document))
    assert known_state_data.write("sqlite", "sqlite", "3", prints, directory) == ["other"]
    assert known_state_data.unusable_reason("sqlite", "sqlite", directory) is None


def test_verify_reports_stale_data(tmp_path, fresh_caches, monkeypatch) -> None:
    """``migrate verify`` / ``migrate manifest``: a data file of other revision files is reported."""
    from llm_proxy_db import verify

    assert verify.manifest_problems() == []
    directory = tmp_path / "states"
    shutil.copytree(known_state_data.DATA_DIR, directory)
    path = known_state_data.data_file("postgresql", directory)
    document = json.loads(path.read_text())
    document["revision_files"]["0007_audit_outcome_values.py"] = "0" * 64
    path.write_text(json.dumps(document))
    known_state_data.data_file("mysql", directory).unlink()
    monkeypatch.setattr(known_state_files, "DATA_DIR", directory)
    problems = verify.manifest_problems()
    assert len(problems) == 2, problems
    assert "postgresql.json was derived from other revision files" in problems[0]
    assert "mysql.json is missing" in problems[1] and "update_known_states.py" in problems[1]


def test_verify_compares_the_data_with_its_scratch_database(tmp_path, fresh_caches, monkeypatch) -> None:
    """The first base -> head pass of verify's cycle is fingerprinted and compared."""
    from llm_proxy_db import verify
    from llm_proxy_db.config.paths import script_location
    from llm_proxy_db.config.settings import Settings

    settings = Settings(driver="sqlite", database_path=tmp_path / "verify.db")
    assert verify.check_cycle(settings, script_location()) == []
    with connect(Settings(driver="sqlite", database_path=tmp_path / "other.db")) as connection:
        real = known_states.revision_fingerprints(connection, derive=True)
    renamed = real["0004"].with_renamed_column("tokens", "cache_hit_count", "hits")
    monkeypatch.setattr(known_state_data, "load", lambda _connection: {**real, "0004": renamed})
    problems = verify.check_cycle(Settings(driver="sqlite", database_path=tmp_path / "again.db"), script_location())
    assert len(problems) == 1 and problems[0].startswith("sqlite: committed known-state fingerprint of revision 0004")
