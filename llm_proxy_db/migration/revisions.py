"""What revisions exist: the script directory, its linear chain, and target resolution."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection

from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.errors import UnknownRevisionError
from llm_proxy_db.migration.revision_info import RevisionInfo, RevisionState  # noqa: F401 (re-exported)
from llm_proxy_db.migration.version_table import current_revision

BASE = "base"
HEAD = "head"


def script_directory(extra_version_locations: tuple[str, ...] = ()) -> ScriptDirectory:
    """Alembic's view of the revision scripts."""
    return _cached_script_directory(extra_version_locations)


@lru_cache(maxsize=8)
def _cached_script_directory(extra_version_locations: tuple[str, ...]) -> ScriptDirectory:
    return ScriptDirectory.from_config(make_config(extra_version_locations=extra_version_locations))


def chain(scripts: ScriptDirectory | None = None) -> list[RevisionInfo]:
    """Every revision, oldest first (the chain is linear; ``migrate verify`` enforces it)."""
    scripts = scripts or script_directory()
    ordered = reversed(list(scripts.walk_revisions(BASE, "heads")))
    return [
        RevisionInfo(
            id=script.revision,
            down_revision=_single(script.down_revision),
            description=(script.doc or "").strip().splitlines()[0] if script.doc else "",
        )
        for script in ordered
    ]


def head_revision(scripts: ScriptDirectory | None = None) -> str:
    """The id of the newest revision."""
    return chain(scripts)[-1].id


def ids(scripts: ScriptDirectory | None = None) -> list[str]:
    """Revision ids, oldest first."""
    return [info.id for info in chain(scripts)]


def resolve(target: str, scripts: ScriptDirectory | None = None) -> str | None:
    """A target (``head``, ``base``, an id or unique id prefix) as a revision id (None = base)."""
    if target == BASE:
        return None
    if target in (HEAD, "heads"):
        return head_revision(scripts)
    known = ids(scripts)
    matches = [rev for rev in known if rev.startswith(target)]
    if target in known:
        return target
    if len(matches) == 1:
        return matches[0]
    raise UnknownRevisionError(
        f"unknown revision {target!r}",
        hint=f"known revisions: {', '.join(known)} (or head, base)",
    )


_NUMBERED = re.compile(r"\d{4}")  # our revision ids: 0001, 0002, ... in order


def position(revision: str | None, scripts: ScriptDirectory | None = None) -> int:
    """How many revisions are applied at ``revision`` (0 at base)."""
    if revision is None:
        return 0
    known = ids(scripts)
    if revision not in known:
        raise _unknown_recorded(revision, known)
    return known.index(revision) + 1


def _unknown_recorded(revision: str, known: list[str]) -> UnknownRevisionError:
    """A newer release of ours (a later revision of the same numbering) or another application."""
    numbered = [rev for rev in known if _NUMBERED.fullmatch(rev)]
    if _NUMBERED.fullmatch(revision) and (not numbered or revision > max(numbered)):
        return UnknownRevisionError(
            f"the database is at revision {revision!r}, which this code does not know",
            hint="it was written by a newer llm-proxy-db release: upgrade this tool, "
            "never migrate or start an older one against it",
        )
    return UnknownRevisionError(
        f"the database's alembic_version holds {revision!r}, which is not an llm-proxy-db revision",
        hint="another application's Alembic history shares this database: point DATABASE_PATH / "
        "DATABASE_URL at the llm-proxy database, or give llm-proxy a database of its own",
    )


def between(start: str | None, end: str | None, scripts: ScriptDirectory | None = None) -> list[str]:
    """Revisions applied going from ``start`` up to ``end`` (oldest first), or [] if end <= start."""
    known = ids(scripts)
    return known[position(start, scripts) : position(end, scripts)]


def _single(down: object) -> str | None:
    if down is None or isinstance(down, str):
        return down
    raise CommandError(f"revision merges several parents ({down}); the chain must be linear")


def partly_applied(connection: Connection, revision: str) -> str | None:
    """How far ``revision`` got when a run stopped half-way through it (MySQL, whose DDL is
    not transactional; PostgreSQL revisions that commit steps on their own), else None: the
    dialect reads the steps its revision file declares."""
    module = script_directory().get_revision(revision).module
    return dialect_for(connection).partly_applied(connection, revision, module)


def peek_revision(
    settings: Settings, version_locations: Sequence[str] = (), connection: Connection | None = None
) -> str | None:
    """One cheap read of the current revision; refuses a revision this code does not know.

    On ``connection`` when given (its transaction is ended after the read).
    """
    if connection is not None:
        current = current_revision(connection)
        connection.rollback()
    elif settings.known_missing():
        return None
    else:
        with connect(settings, create=False) as opened:
            current = current_revision(opened)
    position(current, script_directory(tuple(version_locations)))
    return current
