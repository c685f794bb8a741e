"""Whether a revision is being rendered as SQL (``--sql``) rather than run.

Its own small module so that :mod:`~llm_proxy_db.migration.revision_helpers` and
:mod:`~llm_proxy_db.migration.pg_online` (which the revision files use as
``revision_helpers.is_offline`` and ``pg_online.is_offline``) share it without importing each other.
"""

from __future__ import annotations

from alembic import context


def is_offline() -> bool:
    """True when rendering SQL (``--sql``) instead of running it."""
    return bool(context.is_offline_mode())
