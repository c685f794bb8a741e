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

from llm_proxy_db.config.paths import script_location
from llm_proxy_db.config.paths import script_location as default_location
from llm_proxy_db.config.settings import Settings

__all__ = ["CALLER_GUARDS", "make_config", "script_location"]

# Set on every config built here: the caller (our executor, adoption, a test) runs the
# revisions under its own guard, so ``alembic/env.py`` must not wrap them in another.  A config
# without it (the ``alembic`` command, ``Config("alembic.ini")``) is guarded by env.py itself.
CALLER_GUARDS = "llm_proxy_db.caller_guards"


def make_config(
    settings: Settings | None = None,
    *,
    connection: Connection | None = None,
    extra_version_locations: Sequence[os.PathLike[str] | str] = (),
    stdout: TextIO | None = None,
    script_location: os.PathLike[str] | str | None = None,
) -> Config:
    """An Alembic config for our scripts, carrying ``settings`` and an optional live connection.

    ``extra_version_locations`` adds revision directories after the real chain (tests use it
    for revisions that fail on purpose).  ``script_location`` replaces the real scripts
    directory altogether (``migrate verify`` checks fixture chains with it).
    """
    config = Config(stdout=stdout) if stdout is not None else Config()
    location = Path(script_location) if script_location is not None else default_location()
    config.set_main_option("script_location", _escape(location))
    config.set_main_option("path_separator", "os")
    if extra_version_locations:
        locations = [location / "versions", *(Path(p) for p in extra_version_locations)]
        config.set_main_option("version_locations", os.pathsep.join(_escape(p) for p in locations))
    config.attributes["settings"] = settings
    config.attributes["connection"] = connection
    config.attributes[CALLER_GUARDS] = True
    return config


def _escape(path: Path) -> str:
    return str(path).replace("%", "%%")
