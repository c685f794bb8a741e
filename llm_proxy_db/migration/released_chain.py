"""The revision chain read without Alembic, when every revision file is exactly as released.

Alembic imports each revision file to learn its id, its parent and its docstring; that and
importing Alembic and SQLAlchemy cost about 0.4 s, more than ``migrate history`` or
``migrate manifest`` may take at head (issue 22).  The checksum manifest already records
every released file's normalised SHA-256 in chain order, so when the directory holds
exactly the manifest's files, each with its recorded checksum and with plain literal
``revision`` / ``down_revision`` lines that follow the manifest's order, the chain is the
manifest's, and the descriptions are the files' docstrings' first lines.

:func:`released_chain` answers only that case.  Anything else (a new or edited revision, an
extra file, a manifest that does not parse, an id or parent that disagrees) returns None
and the caller takes Alembic's path, which explains it.  ``tests/test_fast_commands.py``
checks the answer equals Alembic's view (:func:`llm_proxy_db.migration.revisions.chain`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llm_proxy_db.config.paths import manifest_path, versions_dir
from llm_proxy_db.migration import manifest
from llm_proxy_db.migration.revision_info import RevisionInfo

# Module-level, plain literal assignments, as Alembic's template writes them.
_REVISION = re.compile(r"^revision\s*(?::\s*str\s*)?=\s*['\"]([\w.-]+)['\"]\s*$", re.MULTILINE)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]+)?=\s*(None|['\"]([\w.-]+)['\"])\s*$", re.MULTILINE)
_NONE_ONLY = ("branch_labels", "depends_on")
_DOCSTRING = re.compile(r'\A"""(?P<doc>[^"\\]*)"""')


@dataclass(frozen=True)
class ReleasedChain:
    """The released revisions, oldest first, and every revision file's checksum by name."""

    revisions: list[RevisionInfo]
    checksums: dict[str, str]


def released_chain(location: Path | None = None) -> ReleasedChain | None:
    """The chain when every revision file is unchanged since release; None when unsure."""
    try:
        released = manifest.read_manifest(manifest_path(location))
        directory = versions_dir(location)
        files = sorted(directory.glob("*.py"))
        if sorted(path.name for path in files) != sorted(entry.filename for entry in released.entries):
            return None
        checksums = {path.name: manifest.normalised_sha256(path) for path in files}
        revisions: list[RevisionInfo] = []
        for entry in released.entries:
            if checksums[entry.filename] != entry.sha256:
                return None
            parent = revisions[-1].id if revisions else None
            info = _read_revision(directory / entry.filename, entry.revision, parent)
            if info is None:
                return None
            revisions.append(info)
    except Exception:  # noqa: BLE001 - unreadable or malformed: Alembic's path explains it
        return None
    return ReleasedChain(revisions, checksums)


def _read_revision(path: Path, expected: str, parent: str | None) -> RevisionInfo | None:
    """The file's revision when it says plainly that it is ``expected`` following ``parent``."""
    text = path.read_text(encoding="utf-8")
    ids, downs = _REVISION.findall(text), _DOWN.findall(text)
    if ids != [expected] or len(downs) != 1 or (downs[0][1] or None) != parent:
        return None
    if downs[0][0] != "None" and parent is None:
        return None
    for name in _NONE_ONLY:
        if re.findall(rf"^{name}\s*(?::[^=]+)?=\s*(.*?)\s*$", text, re.MULTILINE) not in ([], ["None"]):
            return None
    docstring = _DOCSTRING.match(text)
    if docstring is None:
        return None
    lines = docstring.group("doc").strip().splitlines()
    return RevisionInfo(expected, parent, lines[0] if lines else "")
