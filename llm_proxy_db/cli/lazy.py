"""Modules imported on first use, so that ``--help`` does not pay for Alembic and SQLAlchemy.

The command line's module names :mod:`llm_proxy_db.commands` and the other library modules
at the top, as a thin layer should; importing them loads Alembic and SQLAlchemy, about two
thirds of a ``--help``'s whole time.  :func:`lazy_module` hands back the real module object,
executed by :class:`importlib.util.LazyLoader` the first time one of its attributes is read
(a command body), so nothing else changes: ``monkeypatch`` and ``from ... import`` see the
same module.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """The module ``name``, executed on first attribute access (at once if it is loaded already)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module
