"""Versioned, reversible schema migrations for the llm-proxy database.

The public library API lives in :mod:`llm_proxy_db.commands`; configuration in
:mod:`llm_proxy_db.config.settings`.  The ``llm-proxy-db`` command line is a thin layer over both.
"""

__version__ = "0.1.0"
