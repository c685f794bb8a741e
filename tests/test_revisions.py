"""Every revision, on both dialects, up and down with data in the tables."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from llm_proxy_db import commands
from llm_proxy_db.database import connect
from llm_proxy_db.errors import DataLossError
from llm_proxy_db.migration import revisions
from tests.seed import is_check_violation, project_onto, seed, snapshot

IGNORE_TOKEN_ID = {"tokens": {"id"}}


@pytest.mark.parametrize("revision", revisions.ids())
def test_round_trip_keeps_every_row(settings, revision):
    """Upgrade to a revision, seed, step down and up again: rows and kept values survive."""
    commands.upgrade(settings, revision)
    with connect(settings) as connection:
        seed(connection)
        seeded = snapshot(connection, exclude=IGNORE_TOKEN_ID)

    parent = revisions.chain()[revisions.ids().index(revision)].down_revision
    # The round trip is about the revision's mechanics: the loss check (test_data_loss.py)
    # would refuse dropping the seeded rows.
    assert commands.downgrade(settings, steps=1, allow_data_loss=True, no_backup=True).after == parent
    with connect(settings) as connection:
        after_down = snapshot(connection, exclude=IGNORE_TOKEN_ID)
    assert after_down == project_onto(seeded, after_down)
    assert all(len(after_down[t]) == len(seeded[t]) for t in after_down)

    commands.upgrade(settings, revision)
    with connect(settings) as connection:
        after_up = snapshot(connection, exclude=IGNORE_TOKEN_ID)
    assert project_onto(after_up, after_down) == after_down
    assert {t: len(rows) for t, rows in after_up.items() if t in after_down} == {
        t: len(rows) for t, rows in after_down.items()
    }


def test_token_ids_are_unique_dashed_uuids(settings):
    """Revision 0005 gives every existing token its own UUID v4 (dashed on SQLite too).

    MySQL fills them with ``UUID()`` (version 1) as the service's own MySQL file 4 does."""
    commands.upgrade(settings, "0004")
    with connect(settings) as connection:
        seed(connection, tokens=300)
    commands.upgrade(settings, "0005")
    with connect(settings) as connection:
        ids = connection.execute(sa.text("SELECT id FROM tokens")).scalars().all()
    parsed = [uuid.UUID(str(value)) for value in ids]
    assert len(set(parsed)) == 300
    assert all(value.version == (1 if settings.is_mysql else 4) for value in parsed)
    assert all(len(str(value)) == 36 and str(value).count("-") == 4 for value in ids)


def test_api_key_values_move_to_the_renamed_column(settings):
    commands.upgrade(settings, "0005")
    with connect(settings) as connection:
        seed(connection, projects=10, tokens=10, events=0)
        before = connection.execute(sa.text("SELECT id, openai_api_key FROM projects")).all()
    commands.upgrade(settings, "0006")
    with connect(settings) as connection:
        after = connection.execute(sa.text("SELECT id, api_key FROM projects")).all()
    assert sorted(before) == sorted(after)


def test_deleting_a_project_cascades_at_head(settings):
    """Rebuilds kept every token and the ON DELETE CASCADE still works at head."""
    commands.upgrade(settings, "0001")
    with connect(settings) as connection:
        seed(connection, projects=4, tokens=40, events=0)
    commands.upgrade(settings)
    with connect(settings) as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM tokens")).scalar() == 40
        connection.execute(sa.text("DELETE FROM projects WHERE id = 'proj-1'"))
        connection.commit()
        remaining = connection.execute(sa.text("SELECT project_id FROM tokens")).scalars().all()
    assert len(remaining) == 30
    assert "proj-1" not in remaining


def test_downgrade_of_outcome_values_refuses_rows_it_would_lose(settings):
    """Going below 0007 with 'denied' events would break them: refused unless data loss is
    allowed (then they are folded, tests/test_data_loss.py), nothing changes."""
    commands.upgrade(settings)
    with connect(settings) as connection:
        seed(connection, outcomes=("success", "failure", "denied", "error"))
        before = snapshot(connection)
    with pytest.raises(DataLossError) as excinfo:
        commands.downgrade(settings, steps=1, no_backup=True)
    assert "0007" in excinfo.value.message and "nothing was changed" in excinfo.value.message
    assert commands.status(settings).current_revision == "0007"
    with connect(settings) as connection:
        assert snapshot(connection) == before


def test_new_outcomes_are_accepted_only_at_head(settings):
    commands.upgrade(settings)
    with connect(settings) as connection:
        seed(connection, projects=1, tokens=0, events=4, outcomes=("denied", "error"))
        with pytest.raises(sa.exc.DBAPIError) as failure:
            seed(connection, projects=1, tokens=0, events=1, outcomes=("bogus",), prefix="x")
    assert is_check_violation(failure.value)
