"""The files of the committed known-state data, checked without importing SQLAlchemy.

:mod:`llm_proxy_db.adoption.known_state_data` reads the fingerprints; this module only says
where the files are and whether they still describe the revision files, which is what
``migrate manifest`` reports (and its fast path at head checks without SQLAlchemy).
"""

from __future__ import annotations

import json
from pathlib import Path

from llm_proxy_db.config.paths import versions_dir
from llm_proxy_db.dialects import SQLALCHEMY_NAMES
from llm_proxy_db.migration.manifest import normalised_sha256

DATA_DIR = Path(__file__).resolve().parent / "known_state_prints"
UPDATE_COMMAND = "python scripts/update_known_states.py [--postgres-url URL] [--mysql-url URL]"


def data_file(dialect_name: str, directory: Path | None = None) -> Path:
    """The JSON file of one dialect (SQLAlchemy's name: ``sqlite``, ``postgresql``, ``mysql``)."""
    return (directory or DATA_DIR) / f"{dialect_name}.json"


def revision_checksums(location: Path | None = None) -> dict[str, str]:
    """File name -> normalised SHA-256 of every revision file (as in the manifest)."""
    return {path.name: normalised_sha256(path) for path in sorted(versions_dir(location).glob("*.py"))}


def sqlalchemy_series() -> str:
    """SQLAlchemy's ``major.minor``: reflection output may change between series."""
    import sqlalchemy  # here, not at the top: the fast manifest check passes its series (start-up time)

    return ".".join(sqlalchemy.__version__.split(".")[:2])


def stale_files(
    location: Path | None = None, directory: Path | None = None, *, series: str | None = None
) -> list[str]:
    """One line per data file that does not describe the revision files at ``location``
    (``migrate verify`` and ``migrate manifest`` report them).

    ``series`` is SQLAlchemy's ``major.minor`` when the caller knows it without importing it.
    """
    problems = []
    checksums = revision_checksums(location)
    series = series or sqlalchemy_series()
    for name in SQLALCHEMY_NAMES:
        path = data_file(name, directory)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"known-state data {path.name} is missing")
            continue
        except (OSError, ValueError) as exc:
            problems.append(f"known-state data {path.name} cannot be read: {exc}")
            continue
        if document.get("revision_files") != checksums:
            problems.append(f"known-state data {path.name} was derived from other revision files")
        elif document.get("sqlalchemy") != series:
            problems.append(
                f"known-state data {path.name} was made with SQLAlchemy {document.get('sqlalchemy')}, "
                f"this is {series}"
            )
    return [f"{line}: regenerate it with `{UPDATE_COMMAND}`" for line in problems]
