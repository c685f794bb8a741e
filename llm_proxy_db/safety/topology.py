"""Where a schema change may connect: a session of its own, on a server that writes.

Every command that changes or locks the schema (``setup``, ``migrate up/down/adopt``, a
restore) and every one that runs a client tool's session settings (``db backup``,
``migrate rehearse``: ``pg_dump`` sets ``search_path`` and timeouts on its session) asks here
first, before any lock, backup or change:

1. **A session of our own.**  ``LLM_PROXY_DIRECT_URL`` / ``--direct-url``, when given, is used
   for all of it (``DATABASE_URL`` may stay the pooler's, for the service and for reads).
   Without it, ``DATABASE_URL`` is probed (the dialect's ``transaction_pooler``); a
   transaction pooler is refused with exit 2, naming it and the variable: session-level
   locks, prepared statements and settings cannot be kept to ourselves there.
2. **A server that writes** (writing commands only): a hot standby or a read-only session
   is refused with exit 3 naming it (the dialect's ``read_only_reason``), never with a hint
   about privileges.
"""

from __future__ import annotations

from llm_proxy_db.config.parsing import DIRECT_URL_ENV
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import ConfigError, ReadOnlyDatabaseError


def owned_session_settings(settings: Settings) -> Settings:
    """The settings to connect with for work that needs a server session of its own."""
    if settings.direct_url is not None:
        return settings.for_changes()
    evidence = dialect_for(settings).transaction_pooler(settings)
    if evidence is not None:
        raise ConfigError(
            f"DATABASE_URL {settings.describe()} goes through a transaction-pooling proxy "
            f"(PgBouncer pool_mode=transaction or alike: {evidence}); migration locks, prepared "
            "statements and session settings would land on connections the service uses; "
            "nothing was changed",
            hint=f"set {DIRECT_URL_ENV} (or --direct-url) to a direct connection to the primary "
            "for migrations; DATABASE_URL may stay the pooler's (a session-mode pool works too)",
        )
    return settings


def writable_settings(settings: Settings) -> Settings:
    """:func:`owned_session_settings`, refusing a server that only reads (exit 3)."""
    owned = owned_session_settings(settings)
    reason = dialect_for(owned).read_only_reason(owned)
    if reason is not None:
        raise ReadOnlyDatabaseError(
            f"{owned.describe()}: {reason}; point at the primary. Nothing was locked or changed",
            hint=f"set DATABASE_URL (or {DIRECT_URL_ENV}) to the primary; reads "
            "(`migrate status`, `db backup`) work on a standby",
        )
    return owned
