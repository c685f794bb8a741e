"""Where the migration scripts live, found without importing Alembic.

In a source checkout they are next to the package (``alembic/``); in an installed wheel
inside it (``llm_proxy_db/_alembic``, see ``pyproject.toml``).  The startup path reads the
checksum manifest from here, so this module must stay import-cheap.
"""

from __future__ import annotations

from pathlib import Path

from llm_proxy_db.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "manifest.sum"


def script_location() -> Path:
    """The directory holding ``env.py`` and ``versions/``."""
    for candidate in (_PACKAGE_DIR / "_alembic", _PACKAGE_DIR.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(
        f"cannot find the migration scripts next to {_PACKAGE_DIR}",
        hint="the installation is incomplete: reinstall llm-proxy-db (the wheel ships them)",
    )


def versions_dir(location: Path | None = None) -> Path:
    """The directory of revision files under ``location`` (default: the real scripts)."""
    return (location or script_location()) / "versions"


def manifest_path(location: Path | None = None) -> Path:
    """The checksum manifest, kept next to the revision files it lists."""
    return versions_dir(location) / MANIFEST_NAME
