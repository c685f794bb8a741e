"""The checksum manifest: its format, the cheap head read, and the check at startup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.paths import manifest_path
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.errors import VerificationError
from llm_proxy_db.migration import manifest
from llm_proxy_db.migration.revisions import head_revision
from tests.chain_fixtures import copy_chain, edit, revision_file


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """A private copy of the real scripts directory."""
    return copy_chain(tmp_path)


def test_the_committed_manifest_lists_the_real_chain() -> None:
    """The manifest's head is the chain's head, so startup can trust it without Alembic."""
    released = manifest.read_manifest()
    assert manifest.manifest_head() == released.head == head_revision()
    assert released.render() == manifest_path().read_text(encoding="utf-8")


def test_manifest_head_does_not_import_alembic() -> None:
    """The up-to-date startup path must not pay for importing Alembic (issue 6)."""
    code = (
        "import sys; from llm_proxy_db.migration.manifest import manifest_head; head = manifest_head(); "
        "assert 'alembic' not in sys.modules, sorted(m for m in sys.modules if 'alembic' in m); "
        "print(head)"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == head_revision()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("head 0001\n0001 0001_a.py md5:abc\n", "line 2 is malformed"),
        ("head 0002\n0001 0001_a.py sha256:abc\n", "says head 0002 but its last entry is 0001"),
    ],
)
def test_a_malformed_manifest_is_a_clear_error(text: str, message: str) -> None:
    """A hand-edited manifest is refused with the line that is wrong."""
    with pytest.raises(VerificationError, match=message):
        manifest.parse(text)


def test_an_empty_manifest_round_trips() -> None:
    """Before the first revision the manifest says head base."""
    empty = manifest.Manifest()
    assert empty.head is None
    assert manifest.parse(empty.render()) == empty


def test_manifest_head_needs_a_head_line(tmp_path: Path) -> None:
    """A missing file or a missing head line is an error, never a silent None."""
    path = tmp_path / "manifest.sum"
    with pytest.raises(VerificationError, match="is missing"):
        manifest.manifest_head(path)
    path.write_text("# nothing\n")
    with pytest.raises(VerificationError, match="has no head line"):
        manifest.manifest_head(path)
    path.write_text(manifest.Manifest().render())
    assert manifest.manifest_head(path) is None


def test_check_applied_reports_only_applied_revisions(chain: Path) -> None:
    """An edit to a revision the database has not run yet is verify's business, not startup's."""
    edit(revision_file(chain, "0005"), "def downgrade", "# edited\ndef downgrade")
    path = manifest_path(chain)
    assert manifest.check_applied("0004", path=path, strict=False) == []
    assert manifest.check_applied(None, path=path) == []
    assert manifest.check_applied("0099", path=path) == []  # the version guard's business
    (warning,) = manifest.check_applied("0007", path=path, strict=False)
    assert warning == (
        "revision 0005 is applied to this database but 0005_token_surrogate_id.py changed "
        "since it was released (checksum differs from the manifest)"
    )


def test_check_applied_is_an_error_in_strict_mode(chain: Path) -> None:
    """LLM_PROXY_STRICT_CHECKSUMS=1 turns the warning into a refusal."""
    edit(revision_file(chain, "0002"), "def downgrade", "# edited\ndef downgrade")
    revision_file(chain, "0003").unlink()
    path = manifest_path(chain)
    with pytest.raises(VerificationError, match=r"revision 0002 .* \(and 1 more\)") as caught:
        manifest.check_applied("0007", path=path, env={manifest.STRICT_ENV: "1"})
    assert caught.value.exit_code == 9
    assert manifest.check_applied("0007", path=path, env={manifest.STRICT_ENV: "0"})[1] == (
        "revision 0003 is applied but its file 0003_soft_deactivation.py is missing"
    )


def test_check_applied_without_a_manifest_warns(tmp_path: Path) -> None:
    """A packaging mistake must not stop a service from starting, unless strict."""
    missing = tmp_path / "manifest.sum"
    (warning,) = manifest.check_applied("0001", path=missing, strict=False)
    assert warning.startswith("cannot check the applied revisions' checksums: ")
    with pytest.raises(VerificationError):
        manifest.check_applied("0001", path=missing, strict=True)


def test_status_and_upgrade_carry_checksum_warnings(settings: Settings) -> None:
    """On the real, unedited chain, the startup check finds nothing to say."""
    result = commands.upgrade(settings)
    assert result.checksum_warnings == []
    current = commands.status(settings)
    assert current.checksum_warnings == []
    assert current.as_dict()["checksum_warnings"] == []
