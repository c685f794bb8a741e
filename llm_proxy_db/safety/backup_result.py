"""What a restore did (:class:`RestoreResult`), shared by the SQLite and the server restores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RestoreResult:
    """What a restore did: the database, the file restored, its revision, the safety copy kept
    (``None``: nothing was there to keep), and where the backup was taken."""

    database: str
    restored_from: Path
    revision: str | None
    safety_copy: Path | None
    replaced_damaged: bool = False
    origin: str | None = None
