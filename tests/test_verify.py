"""``migrate verify``: passes on the real chain, and names the mistake in each broken copy.

Every broken chain is a copy of ``alembic/`` in a tmp dir (see ``chain_fixtures``); the
real scripts are never touched.  A check that fails must say which revision and why in one
line, because that line is all a contributor sees in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from llm_proxy_db import verify
from llm_proxy_db.config.paths import manifest_path
from llm_proxy_db.errors import VerificationError
from llm_proxy_db.migration.manifest import UPDATE_COMMAND, read_manifest
from tests.chain_fixtures import add_revision, copy_chain, edit, revision_file

DROP_INDEX = 'op.drop_index("idx_projects_name", table_name="projects")'
CREATE_INDEX = 'op.create_index("idx_projects_name", "projects", ["name"])'
NO_CHANGE = 'op.execute("SELECT 1")'
ADD_COLUMN = 'op.add_column("projects", sa.Column("note", sa.Text))'
DROP_COLUMN = 'op.drop_column("projects", "note")'
NO_OP = ": downgrade() is a no-op (only pass, ... or a docstring)"


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """A private copy of the real scripts directory."""
    return copy_chain(tmp_path)


def _server(dialect: str, request: pytest.FixtureRequest) -> URL | None:
    """The server for a ``postgresql`` or ``mysql`` run (skips when there is none)."""
    if dialect == "sqlite":
        return None
    server: URL | None = request.getfixturevalue(f"{'postgres' if dialect == 'postgresql' else 'mysql'}_server_url")
    if server is None:
        pytest.skip(f"no {dialect} server")
    return server


def _servers(dialect: str, request: pytest.FixtureRequest) -> dict[str, URL | None]:
    """``verify``'s keyword for the dialect's server."""
    return {"mysql_url" if dialect == "mysql" else "postgres_url": _server(dialect, request)}


def test_the_real_chain_is_sound(dialect: str, request: pytest.FixtureRequest) -> None:
    """What CI runs: the shipped revisions pass every check, on SQLite and PostgreSQL."""
    stages: list[str] = []
    assert verify.verify(**_servers(dialect, request), progress=stages.append) == []
    assert stages[0] == "revision chain" and stages[-1] == "offline SQL"
    assert any(stage.startswith(dialect) for stage in stages)


def test_two_heads_are_refused(chain: Path) -> None:
    """Two revisions on one parent: there is no single path to head, so no upgrade order."""
    add_revision(chain, "0008", "0006")
    problems = verify.verify(script_location=chain)
    assert "expected exactly one head, found 2: 0007, 0008" in problems, problems
    assert "revision 0006 has several children (0007, 0008): a branch" in problems


def test_merges_and_dependencies_are_refused(chain: Path) -> None:
    """A merge revision hides a branch; depends_on makes the order more than a line."""
    add_revision(chain, "0008", "0006")
    path = add_revision(chain, "0009", "0007")
    edit(path, "down_revision = '0007'", "down_revision = ('0007', '0008')")
    edit(path, "depends_on = None", "depends_on = '0005'")
    problems = verify.check_chain(verify.load_scripts(chain))
    assert "revision 0009 merges 0007, 0008" in problems, problems
    assert "revision 0009 uses branch_labels or depends_on: keep one line" in problems


def test_an_edited_released_revision_is_refused(chain: Path) -> None:
    """A released revision already ran on databases in the field: editing it splits history."""
    edit(revision_file(chain, "0004"), "def downgrade", "# tweaked after release\ndef downgrade")
    assert verify.verify(script_location=chain) == [
        "released revision 0004 (0004_token_cache_hits.py) was edited: its checksum differs "
        "from the manifest; revert it and write a new revision instead"
    ]


def test_line_endings_and_trailing_blanks_are_not_edits(chain: Path) -> None:
    """A Windows checkout (CRLF) must not look like an edited revision."""
    path = revision_file(chain, "0003")
    path.write_bytes(path.read_bytes().replace(b"\n", b"  \r\n") + b"\r\n\r\n")
    assert verify.manifest_problems(chain) == []


def test_a_revision_inserted_before_the_head_is_refused(chain: Path) -> None:
    """New revisions go after the released head, never between released ones."""
    add_revision(chain, "0008", "0004", upgrade=ADD_COLUMN, downgrade=DROP_COLUMN)
    edit(revision_file(chain, "0005"), 'down_revision = "0004"', 'down_revision = "0008"')
    problems = verify.verify(script_location=chain)
    assert (
        "revision 0008 (0008_fixture.py) is new but was inserted before released revision(s) "
        "0005, 0006, 0007: new revisions must follow the released head 0007"
    ) in problems, problems
    assert any(line.startswith("released revision 0005") for line in problems)


@pytest.mark.parametrize(
    ("downgrade", "expected"),
    [
        (None, " has no downgrade()"),
        ("pass", NO_OP),
        ('"""Nothing to undo."""\n...', NO_OP),
        ("raise NotImplementedError", ": downgrade() only raises NotImplementedError"),
    ],
    ids=["missing", "pass", "docstring", "not-implemented"],
)
def test_a_revision_without_a_real_downgrade_is_refused(
    chain: Path, downgrade: str | None, expected: str
) -> None:
    """Every revision must be reversible, or a bad release cannot be rolled back."""
    add_revision(chain, "0008", "0007", upgrade=ADD_COLUMN, downgrade=downgrade)
    verify.update_manifest(chain)
    problems = verify.verify(script_location=chain)
    assert problems[0] == f"revision 0008 (0008_fixture.py){expected}", problems
    # The cycle shows the consequence: a failed downgrade, or a column left behind at head.
    assert any(line.startswith("sqlite: ") for line in problems[1:]), problems


def test_drift_between_revisions_and_head_metadata_is_refused(
    chain: Path, dialect: str, request: pytest.FixtureRequest
) -> None:
    """A chain that leaves out an index is caught even though every step succeeds."""
    add_revision(chain, "0008", "0007", upgrade=DROP_INDEX, downgrade=CREATE_INDEX)
    verify.update_manifest(chain)
    problems = verify.verify(**_servers(dialect, request), script_location=chain)
    assert f"{dialect}: at head, index idx_projects_name (name) on projects is missing" in problems
    assert len(problems) == (1 if dialect == "sqlite" else 2), problems


def test_ids_must_be_readable_and_match_file_names(chain: Path) -> None:
    """``0008_x.py`` holds revision ``0008``: the file name is how people find a revision."""
    add_revision(chain, "0008", "0007", filename="0009_misnamed.py")
    add_revision(chain, "ab12cd", "0008", slug="hex")
    add_revision(chain, "0011", "ab12cd", slug="gap")
    problems = verify.check_chain(verify.load_scripts(chain))
    assert problems == [
        "file 0009_misnamed.py holds revision 0008: name it 0008_<slug>.py",
        "revision id 'ab12cd' (ab12cd_hex.py) is not a readable id like 0008",
    ]
    edit(chain / "versions" / "ab12cd_hex.py", "revision = 'ab12cd'", "revision = '0010'")
    edit(chain / "versions" / "0011_gap.py", "down_revision = 'ab12cd'", "down_revision = '0008'")
    problems = verify.check_chain(verify.load_scripts(chain))
    assert "revision 0011 follows 0008: ids must count up by one" in problems


def test_a_second_base_is_refused(chain: Path) -> None:
    """Two revisions without a parent make two chains."""
    add_revision(chain, "0008", None)
    problems = verify.check_chain(verify.load_scripts(chain))
    assert "expected exactly one base, found 2: 0001, 0008" in problems
    assert "revision 0008 is a base: only 0001 may have no down_revision" in problems


def test_a_script_that_cannot_load_is_one_line(chain: Path) -> None:
    """A syntax error stops everything else, with the reason."""
    add_revision(chain, "0008", "0007", upgrade="return (")
    (problem,) = verify.verify(script_location=chain)
    assert problem.startswith("cannot load the revision scripts: ")


def test_a_revision_that_cannot_render_offline_is_refused(chain: Path) -> None:
    """``--sql`` is how a DBA reviews a release: every revision must render."""
    add_revision(
        chain,
        "0008",
        "0007",
        upgrade='if context.is_offline_mode():\n    raise RuntimeError("needs a live database")',
        downgrade=NO_CHANGE,
    )
    verify.update_manifest(chain)
    assert verify.verify(script_location=chain) == [
        "sqlite: offline SQL (--sql) does not render: needs a live database",
        "postgresql: offline SQL (--sql) does not render: needs a live database",
        "mysql: offline SQL (--sql) does not render: needs a live database",
    ]


def test_an_unreachable_postgresql_server_is_one_line(chain: Path) -> None:
    """No scratch database, no traceback: the failure names the (masked) server."""
    url = URL.create("postgresql+psycopg", "postgres", "s3cret", "127.0.0.1", 1, "test")
    (problem,) = verify.check_scratch_server(url, chain)
    assert problem.startswith("postgresql: cannot open database postgresql+psycopg://postgres:***@")
    assert "s3cret" not in problem


def test_a_new_revision_must_be_added_to_the_manifest(chain: Path) -> None:
    """Until it is listed, later edits to it would go unnoticed."""
    add_revision(chain, "0008", "0007", upgrade=NO_CHANGE, downgrade=NO_CHANGE)
    assert verify.manifest_problems(chain) == [
        f"revision 0008 (0008_fixture.py) is not in the manifest: run `{UPDATE_COMMAND}`"
    ]
    update = verify.update_manifest(chain)
    assert (update.path, update.added, update.rewritten) == (manifest_path(chain), ["0008"], [])
    assert update.describe() == f"{manifest_path(chain)}: added 0008"
    assert read_manifest(update.path).head == "0008"
    assert verify.verify(script_location=chain) == []


def test_the_manifest_update_appends_only(chain: Path) -> None:
    """Rewriting a released entry needs --force; the manifest is unchanged when refused."""
    before = manifest_path(chain).read_text()
    edit(revision_file(chain, "0002"), "def downgrade", "# edited\ndef downgrade")
    with pytest.raises(VerificationError, match="refusing to rewrite released manifest entries"):
        verify.update_manifest(chain)
    assert manifest_path(chain).read_text() == before
    update = verify.update_manifest(chain, force=True)
    assert update.describe() == f"{manifest_path(chain)}: rewrote 0002 (--force)"
    assert verify.update_manifest(chain).describe().endswith(": already up to date")
    assert verify.manifest_problems(chain) == []


def test_the_manifest_update_refuses_a_broken_chain(chain: Path) -> None:
    """A manifest records one linear history; with two heads there is none to record."""
    add_revision(chain, "0008", "0006")
    with pytest.raises(VerificationError, match="chain is not sound: expected exactly one head"):
        verify.update_manifest(chain)


def test_a_missing_manifest_is_reported(chain: Path) -> None:
    """The manifest must be committed with the revisions."""
    manifest_path(chain).unlink()
    (problem,) = verify.manifest_problems(chain)
    assert problem == f"the revision manifest {manifest_path(chain)} is missing"
    assert verify.update_manifest(chain).added == [f"000{n}" for n in range(1, 8)]


def test_a_deleted_or_renamed_released_revision_is_reported(chain: Path) -> None:
    """History cannot lose a revision that databases in the field have applied."""
    old = revision_file(chain, "0007")
    old.rename(old.with_name("0007_renamed.py"))
    assert verify.manifest_problems(chain) == [
        "released revision 0007 was renamed from 0007_audit_outcome_values.py to 0007_renamed.py"
    ]
    revision_file(chain, "0007").unlink()
    assert verify.manifest_problems(chain) == [
        "released revision 0007 (0007_audit_outcome_values.py) is missing"
    ]
