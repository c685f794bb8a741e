"""Opening the database: each dialect's engine, and clear connection errors.

The work is :mod:`llm_proxy_db.dialects.connecting`'s (the dialects open scratch databases
with it too); this module is the name the layers above use.  What an engine does per dialect
(SQLite's transactional DDL and foreign-key choice, say) lives in the dialect's package under
:mod:`llm_proxy_db.dialects`.
"""

from __future__ import annotations

from llm_proxy_db.dialects.connecting import connect, connection_error, create_engine

__all__ = ["connect", "connection_error", "create_engine"]
