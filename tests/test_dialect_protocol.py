"""Every dialect package provides every name of its protocol (dialects/base.py).

mypy checks the server modules where they are passed as ``ServerDialect``; this checks all
three, SQLite included, so a name added to the protocol cannot be forgotten in one module.
"""

from __future__ import annotations

import pytest

from llm_proxy_db.dialects import SQLALCHEMY_NAMES, dialect_for
from llm_proxy_db.dialects.base import Dialect, ServerDialect
from llm_proxy_db.safety import backup


def _names(protocol: type) -> set[str]:
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass.__module__ != "llm_proxy_db.dialects.base":
            continue
        names |= set(klass.__dict__.get("__annotations__", {}))
        names |= {name for name, value in vars(klass).items() if callable(value) and not name.startswith("_")}
    return names


@pytest.mark.parametrize("name", SQLALCHEMY_NAMES)
def test_each_dialect_module_has_every_name_of_its_protocol(name: str) -> None:
    module = dialect_for(name)
    protocol = Dialect if name == "sqlite" else ServerDialect
    missing = sorted(attribute for attribute in _names(protocol) if not hasattr(module, attribute))
    assert missing == [], f"{module.__name__} lacks {missing}"


def test_the_protocol_lists_the_backup_and_restore_jobs() -> None:
    """The dialects offer the primitives; the backups and restores themselves are run from the
    safety layer (safety/sqlite_backup.py, safety/server_backup.py), chosen by BACKUP_KIND."""
    assert {"BACKUP_KIND", "needs_backup", "default_backup_directory", "copy_of"} <= _names(Dialect)
    assert {"dump", "inspect_dump", "load_dump", "drop_everything", "RESTORE_TOOLS"} <= _names(ServerDialect)


@pytest.mark.parametrize("name", SQLALCHEMY_NAMES)
def test_each_dialect_has_a_backup_runner_with_every_job(name: str) -> None:
    runner = backup._RUNNERS[dialect_for(name).BACKUP_KIND]
    assert all(callable(getattr(runner, job, None)) for job in ("backup", "take_backup", "restore"))
