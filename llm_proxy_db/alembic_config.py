"""The one place that builds an Alembic ``Config``; nothing else touches ini keys.

The migration scripts are found next to the package in a source checkout (``alembic/``)
or inside it in an installed wheel (``llm_proxy_db/_alembic``).  The database is never put
into the config as a URL string (``%`` in a password breaks ini interpolation): the
settings, and when there is one the live connection, travel in ``config.attributes``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from alembic.config import Config
from sqlalchemy.engine import Connection

from llm_proxy_db.errors import ConfigError
from llm_proxy_db.settings import Settings

_PACKAGE_DIR = Path(__file__).resolve().parent


def script_location() -> Path:
    """The directory holding ``env.py`` and ``versions/``."""
    for candidate in (_PACKAGE_DIR / "_alembic", _PACKAGE_DIR.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError(f"cannot find the migration scripts next to {_PACKAGE_DIR}")


def make_config(
    settings: Settings | None = None,
    *,
    connection: Connection | None = None,
    extra_version_locations: Sequence[os.PathLike[str] | str] = (),
    stdout: TextIO | None = None,
) -> Config:
    """An Alembic config for our scripts, carrying ``settings`` and an optional live connection.

    ``extra_version_locations`` adds revision directories after the real chain (tests use it
    for revisions that fail on purpose).
    """
    config = Config(stdout=stdout) if stdout is not None else Config()
    location = script_location()
    config.set_main_option("script_location", _escape(location))
    config.set_main_option("path_separator", "os")
    if extra_version_locations:
        locations = [location / "versions", *(Path(p) for p in extra_version_locations)]
        config.set_main_option("version_locations", os.pathsep.join(_escape(p) for p in locations))
    config.attributes["settings"] = settings
    config.attributes["connection"] = connection
    return config


def _escape(path: Path) -> str:
    return str(path).replace("%", "%%")
