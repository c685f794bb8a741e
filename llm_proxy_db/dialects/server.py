"""What the server dialects (PostgreSQL, MySQL/MariaDB) share in the protocol's backup part."""

from __future__ import annotations

import os
from pathlib import Path

from llm_proxy_db.config.settings import Settings

STATE_DIR_ENV = "XDG_STATE_HOME"


def default_backup_directory(settings: Settings) -> Path:
    """``$XDG_STATE_HOME/llm-proxy-db/backups`` (``~/.local/state/...`` without it): a server
    database has no file to sit beside, and the working directory (a checkout, ``/``, a
    container's read-only root) is no place for dumps that hold the projects' API keys."""
    del settings
    state = os.environ.get(STATE_DIR_ENV, "").strip()
    base = Path(state).expanduser() if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "llm-proxy-db" / "backups"


def needs_backup(settings: Settings) -> bool:
    """A server database may always hold something worth a dump."""
    del settings
    return True
