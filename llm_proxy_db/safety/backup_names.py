"""The names of automatic backups, and their rotation: one scheme for every dialect.

An automatic backup (or dump) is ``<prefix>.<UTC time>[-N].<revision>.<suffix>`` in the backup
directory, where ``<prefix>`` is ``<database name>.<identity>`` and the identity a digest of
what names the database uniquely (a SQLite file's real path; a server's driver, host, port and
database name, never the user or password).  Databases sharing a backup directory therefore
never rotate each other's backups, and files named otherwise (``--out``, a safety copy
``*.pre-restore.*``, a dump from an older release) are never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

_STAMP = "%Y%m%dT%H%M%SZ"


def digest(text: str) -> str:
    """A short, stable name component for ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def free_name(directory: Path, prefix: str, revision: str | None, suffix: str) -> Path:
    """``<prefix>.<UTC time>.<revision>.<suffix>`` in ``directory``; ``<UTC time>-2``, ``-3``,
    ... when taken within the same second as another."""
    stamp = datetime.now(timezone.utc).strftime(_STAMP)
    rev = revision or "base"
    candidate, counter = directory / f"{prefix}.{stamp}.{rev}.{suffix}", 2
    while candidate.exists() or candidate.is_symlink():
        candidate, counter = directory / f"{prefix}.{stamp}-{counter}.{rev}.{suffix}", counter + 1
    return candidate


def prune(directory: Path, prefix: str, keep: int, *, protect: Path, suffix: str) -> list[Path]:
    """Delete the oldest automatic backups named ``<prefix>.*.<suffix>`` beyond ``keep``
    (``protect``, the one just taken, is never deleted and counts as one of them)."""
    pattern = re.compile(
        rf"^{re.escape(prefix)}\.(\d{{8}}T\d{{6}}Z)(?:-(\d+))?\.[A-Za-z0-9_]+\.{re.escape(suffix)}$"
    )
    found = []
    for path in directory.iterdir():
        match = pattern.match(path.name)
        if match and path != protect and path.is_file() and not path.is_symlink():
            found.append(((match.group(1), int(match.group(2) or 1)), path))
    found.sort()
    doomed = [path for _key, path in found[: max(0, len(found) - (keep - 1))]]
    for path in doomed:
        with contextlib.suppress(OSError):
            path.unlink()
    return doomed
