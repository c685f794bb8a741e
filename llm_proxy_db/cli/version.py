"""``llm-proxy-db --version``: the installed distribution's version, from its package metadata."""

from __future__ import annotations

from llm_proxy_db import __version__


def version_line() -> str:
    """``llm-proxy-db 0.1.0`` and a newline; the source tree's ``__version__`` when not installed."""
    from importlib import metadata  # here, not at the top: only --version pays for it (start-up time)

    try:
        version = metadata.version("llm-proxy-db")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        version = __version__
    return f"llm-proxy-db {version}\n"
