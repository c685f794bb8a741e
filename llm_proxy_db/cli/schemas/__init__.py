"""The JSON Schema of every ``--json`` output, and of a JSON log line, published with the package.

``COMMAND_SCHEMAS`` names the schema of each command's result; on any error every command
prints the object of ``error.schema.json`` instead.  ``tests/test_json_output.py`` validates
every command's output against these files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
ERROR_SCHEMA = "error"
LOG_LINE_SCHEMA = "log-line"
COMMAND_SCHEMAS = {
    "setup": "run",
    "migrate up": "run",
    "migrate down": "run",
    "migrate up --sql": "sql",
    "migrate up --dry-run": "plan",
    "migrate down --sql": "sql",
    "migrate status": "status",
    "migrate history": "history",
    "migrate log": "log",
    "migrate adopt": "adopt",
    "migrate adopt --dry-run": "adopt",
    "migrate rehearse": "rehearse",
    "migrate verify": "problems",
    "migrate manifest": "problems",
    "migrate manifest --update": "manifest-update",
    "migrate drift": "drift",
    "db backup": "backup",
    "db restore": "restore",
}


def path(name: str) -> Path:
    """The file of schema ``name`` (``run``, ``status``, ..., ``error``, ``log-line``)."""
    return SCHEMA_DIR / f"{name}.schema.json"


def load(name: str) -> dict[str, Any]:
    """Schema ``name`` as a dict."""
    loaded: dict[str, Any] = json.loads(path(name).read_text(encoding="utf-8"))
    return loaded
