"""What a restore did (:class:`RestoreResult`), shared by the SQLite and the server restores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``db restore --json``)."""
        return {
            "database": self.database,
            "restored_from": str(self.restored_from),
            "revision": self.revision,
            "safety_copy": str(self.safety_copy) if self.safety_copy else None,
            "replaced_damaged": self.replaced_damaged,
            "origin": self.origin,
        }
