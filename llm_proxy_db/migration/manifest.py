"""The checksum manifest of the revision files (``alembic/versions/manifest.sum``).

In the spirit of a migration directory sum file (atlas's ``atlas.sum``): one line per
released revision, oldest first, with its file name and the SHA-256 of its normalised
content, plus the head revision.  It is committed with the revisions, so a revision that
was edited after release, or a new one slipped in before the head, shows up in review and
in ``llm-proxy-db migrate verify``.

This module never imports Alembic: the startup path reads the head revision with
:func:`manifest_head` and checks applied revisions with :func:`check_applied` cheaply.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llm_proxy_db.config.parsing import STRICT_CHECKSUMS_ENV as STRICT_ENV
from llm_proxy_db.config.parsing import parse_bool
from llm_proxy_db.config.paths import manifest_path
from llm_proxy_db.errors import VerificationError

UPDATE_COMMAND = "llm-proxy-db migrate manifest --update"
HEADER = (
    "# llm-proxy-db revision manifest, checked by `llm-proxy-db migrate verify`.\n"
    "# One line per revision, oldest first: id, file, sha256 of the file (line endings and\n"
    f"# trailing blanks normalised).  Append a new revision with `{UPDATE_COMMAND}`;\n"
    "# never edit a released line: write a new revision instead.\n"
)


@dataclass(frozen=True)
class Entry:
    """One revision file as released: its id, file name and content checksum."""

    revision: str
    filename: str
    sha256: str

    def render(self) -> str:
        """The manifest line for this entry."""
        return f"{self.revision} {self.filename} sha256:{self.sha256}"


@dataclass(frozen=True)
class Manifest:
    """The released revisions, oldest first; the head is the last one."""

    entries: tuple[Entry, ...] = ()

    @property
    def head(self) -> str | None:
        """The newest released revision (None for an empty manifest)."""
        return self.entries[-1].revision if self.entries else None

    @property
    def ids(self) -> list[str]:
        """Revision ids, oldest first."""
        return [entry.revision for entry in self.entries]

    def render(self) -> str:
        """The file's text."""
        lines = [entry.render() for entry in self.entries]
        return HEADER + f"head {self.head or 'base'}\n" + "".join(f"{line}\n" for line in lines)


def normalised_sha256(path: Path) -> str:
    """SHA-256 of a file with CRLF/CR line endings and trailing whitespace normalised away."""
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    canonical = "\n".join(lines).strip("\n") + "\n"
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogateescape")).hexdigest()


def entry_for(revision: str, path: Path) -> Entry:
    """The manifest entry a revision file would get now."""
    return Entry(revision=revision, filename=path.name, sha256=normalised_sha256(path))


def parse(text: str, source: str = "manifest") -> Manifest:
    """Read the manifest's text; a malformed line is a :class:`VerificationError`."""
    entries: list[Entry] = []
    head: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if fields[0] == "head" and len(fields) == 2:
            head = fields[1]
        elif len(fields) == 3 and fields[2].startswith("sha256:"):
            entries.append(Entry(fields[0], fields[1], fields[2].removeprefix("sha256:")))
        else:
            raise VerificationError(
                f"{source} line {number} is malformed: {line!r}",
                hint=f"restore it from git, or rebuild it with `{UPDATE_COMMAND}`",
            )
    manifest = Manifest(tuple(entries))
    if (head or "base") != (manifest.head or "base"):
        raise VerificationError(
            f"{source} says head {head} but its last entry is {manifest.head or 'base'}",
            hint=f"regenerate it with `{UPDATE_COMMAND}`",
        )
    return manifest


def read_manifest(path: Path | None = None) -> Manifest:
    """The manifest at ``path`` (default: next to the real revision files)."""
    path = path or manifest_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerificationError(
            f"the revision manifest {path} is missing", hint=f"create it with `{UPDATE_COMMAND}`"
        ) from None
    return parse(text, source=str(path.name))


def manifest_head(path: Path | None = None) -> str | None:
    """The head revision recorded in the manifest, read without Alembic (None = no revisions).

    Only the ``head`` line is read, so the startup path pays for one small file read.
    """
    path = path or manifest_path()
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("head "):
                    head = line.split()[1]
                    return None if head == "base" else head
    except FileNotFoundError:
        raise VerificationError(
            f"the revision manifest {path} is missing", hint=f"create it with `{UPDATE_COMMAND}`"
        ) from None
    raise VerificationError(
        f"the revision manifest {path} has no head line",
        hint=f"restore it from git, or rebuild it with `{UPDATE_COMMAND}`",
    )


def write_manifest(manifest: Manifest, path: Path | None = None) -> Path:
    """Write the manifest atomically (a temporary file renamed over the old one)."""
    path = path or manifest_path()
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(manifest.render(), encoding="utf-8", newline="\n")
    os.replace(temporary, path)
    return path


def compare(manifest: Manifest, current: Sequence[Entry]) -> list[str]:
    """One line per way the current chain breaks the manifest (empty: all is well).

    Released revisions must be unchanged and stay first, in order; new ones follow the
    released head and must be added to the manifest.
    """
    unlisted = [
        f"revision {entry.revision} ({entry.filename}) is not in the manifest: "
        f"run `{UPDATE_COMMAND}`"
        for entry in current[len(manifest.entries) :]
        if entry.revision not in manifest.ids
    ]
    return broken_promises(manifest, current) + unlisted


def broken_promises(manifest: Manifest, current: Sequence[Entry]) -> list[str]:
    """Released revisions edited, renamed or missing, and new revisions placed before the head."""
    by_id = {entry.revision: entry for entry in current}
    problems = [_released_problem(entry, by_id) for entry in manifest.entries]
    released = set(manifest.ids)
    for index, entry in enumerate(current[: len(manifest.entries)]):
        if entry.revision not in released:
            later = [e.revision for e in current[index + 1 :] if e.revision in released]
            problems.append(
                f"revision {entry.revision} ({entry.filename}) is new but was inserted before "
                f"released revision(s) {', '.join(later)}: new revisions must follow the "
                f"released head {manifest.head}"
            )
    return [line for line in problems if line]


def _released_problem(released: Entry, by_id: Mapping[str, Entry]) -> str | None:
    entry = by_id.get(released.revision)
    if entry is None:
        return f"released revision {released.revision} ({released.filename}) is missing"
    if entry.filename != released.filename:
        return (
            f"released revision {released.revision} was renamed from {released.filename} "
            f"to {entry.filename}"
        )
    if entry.sha256 != released.sha256:
        return (
            f"released revision {released.revision} ({released.filename}) was edited: its "
            "checksum differs from the manifest; revert it and write a new revision instead"
        )
    return None


def updated(manifest: Manifest, current: Sequence[Entry], *, force: bool = False) -> Manifest:
    """The manifest with the new revisions of ``current`` appended.

    Released entries are never rewritten unless ``force`` is set (for a revision that was
    never shipped anywhere); otherwise any broken promise is a :class:`VerificationError`.
    """
    problems = broken_promises(manifest, current)
    if problems and not force:
        raise VerificationError(
            f"refusing to rewrite released manifest entries: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint="only use --force for revisions that were never released",
        )
    return Manifest(tuple(current))


def check_applied(
    current_revision: str | None,
    *,
    path: Path | None = None,
    strict: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """Applied revisions (up to ``current_revision``) whose file changed since release.

    Returns one warning line per changed file.  In strict mode (``strict=True``, or
    ``LLM_PROXY_STRICT_CHECKSUMS=1``) a change is a :class:`VerificationError` instead.
    A revision the manifest does not list is left to the version guard; a missing or
    malformed manifest is itself a warning.
    """
    if current_revision is None:
        return []
    path = path or manifest_path()
    try:
        manifest = read_manifest(path)
    except VerificationError as exc:
        warnings = [f"cannot check the applied revisions' checksums: {exc.message}"]
    else:
        warnings = _applied_problems(manifest, current_revision, path.parent)
    if warnings and strict_mode(strict, env):
        raise VerificationError(
            warnings[0] + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""),
            hint=f"{STRICT_ENV} is set: restore the released revision files",
        )
    return warnings


def _applied_problems(manifest: Manifest, current_revision: str, directory: Path) -> list[str]:
    if current_revision not in manifest.ids:
        return []  # a revision the manifest does not list is left to the version guard
    applied = manifest.entries[: manifest.ids.index(current_revision) + 1]
    return [line for entry in applied if (line := _applied_problem(entry, directory))]


def _applied_problem(entry: Entry, directory: Path) -> str | None:
    file = directory / entry.filename
    if not file.is_file():
        return f"revision {entry.revision} is applied but its file {entry.filename} is missing"
    if normalised_sha256(file) != entry.sha256:
        return (
            f"revision {entry.revision} is applied to this database but {entry.filename} "
            "changed since it was released (checksum differs from the manifest)"
        )
    return None


def strict_mode(strict: bool | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Whether checksum changes are errors: ``strict`` if given, else the environment."""
    if strict is not None:
        return strict
    return parse_bool(STRICT_ENV, (os.environ if env is None else env).get(STRICT_ENV), False)
