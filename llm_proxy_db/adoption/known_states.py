"""Every schema state a real llm-proxy database can be in, with the revision each one equals.

Nothing here is typed by hand: the fingerprint of each revision is *derived* by running the
real revision scripts in the dialect's scratch place (``scratch_connection``), one revision
at a time, and fingerprinting after each.  SQLite uses a file in a temporary directory;
PostgreSQL uses a scratch schema on the same server, created inside one transaction that is
always rolled back, so the database being inspected never sees it (it needs the ``CREATE``
privilege on the database, which the owner has); MySQL a scratch database.
Results are cached per dialect and server version, so the scripts run once per process.

Deriving costs seconds, so the results are also committed as data
(:mod:`llm_proxy_db.adoption.known_state_data`, proven equal to the derivation by a test and by
``migrate verify``): :func:`revision_fingerprints` uses them when they describe these
revision files on this server family and derives otherwise (``derive=True`` always derives).

The states that are not a revision are derived from revision fingerprints:

- ``goose-1``: the 0002 shape plus the ``projects.is_active`` column that 0003 adds (the
  service's goose version 1).  Stamped 0002: revision 0003 adds only missing columns.
- ``*-api_key`` (PostgreSQL): goose versions 1-3 of a database a later service release
  created with ``api_key`` instead of ``openai_api_key``.  Stamped at the revision of the
  same shape: revision 0006 renames only when ``openai_api_key`` exists.  Goose 4 with
  ``api_key`` has exactly the 0006 shape, so it *is* state 0006 (goose versions 4 and 5).

The L2 column-order variant (columns appended by ``ALTER TABLE``) needs no state of its own:
fingerprints ignore column order.  A head-shaped unversioned SQLite file is state 0007.
Each dialect's history data adjusts the list (:func:`adjust_for_dialect`): on SQLite, states
0001-0003 also accept goose version 0 (a 2025-12-02 start that failed), PostgreSQL and MySQL
add the ``api_key`` variants, MySQL its own goose numbering and the MySQL 8 trap state.
:mod:`llm_proxy_db.service.artefacts` strips what later starts added before matching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from sqlalchemy.engine import Connection

from alembic import command
from llm_proxy_db.adoption import known_state_data
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.base import Dialect, ExtraCheckState
from llm_proxy_db.errors import ConfigError, SchemaMismatchError
from llm_proxy_db.migration import revisions
from llm_proxy_db.schema.fingerprint import Fingerprint, fingerprint, normalise_check

RENAMED_COLUMN = ("projects", "openai_api_key", "api_key")

# What each revision is called in the field, and which goose version produced its shape.
_REVISION_NAMES = {
    "0001": ("L0 (projects and tokens, shipped 2025-05)", ()),
    "0002": ("L1 (L0 plus the audit log, shipped 2025-08-13)", ()),
    "0003": ("L2 (soft deactivation, shipped 2025-08-14) / goose version 2", (2,)),
    "0004": ("token cache hits / goose version 3", (3,)),
    "0005": ("token surrogate id / goose version 4", (4,)),
    "0006": ("provider-agnostic api_key / goose version 5", (5,)),
    "0007": ("head (audit outcomes widened) / goose version 6", (6,)),
}
_API_KEY_VARIANTS = {"goose-1": 1, "0003": 2, "0004": 3, "0005": 4}

_cache: dict[tuple[str, tuple[int | str, ...]], dict[str, Fingerprint]] = {}


@dataclass(frozen=True)
class KnownState:
    """A recognisable schema state: its name, the revision to stamp, and its fingerprint."""

    name: str
    revision: str
    description: str
    fingerprint: Fingerprint
    goose_versions: tuple[int, ...] = ()


def known_states(connection: Connection, *, derive: bool = False) -> list[KnownState]:
    """Every known state of the dialect on ``connection``, oldest first (``derive``: from
    fingerprints derived by running the revisions, never from the committed data)."""
    prints = revision_fingerprints(connection, derive=derive)
    states = [
        KnownState(rev, rev, _REVISION_NAMES[rev][0], prints[rev], _REVISION_NAMES[rev][1])
        for rev in revisions.ids()
    ]
    is_active = prints["0003"].tables["projects"].columns["is_active"]
    goose_1 = KnownState(
        "goose-1",
        "0002",
        "goose version 1 (L1 plus projects.is_active)",
        prints["0002"].with_column("projects", "is_active", is_active),
        (1,),
    )
    states.insert(2, goose_1)
    return adjust_for_dialect(dialect_for(connection), states, prints)


def adjust_for_dialect(
    dialect: Dialect, states: list[KnownState], prints: Mapping[str, Fingerprint]
) -> list[KnownState]:
    """The revisions' states adjusted for the service's history on ``dialect`` (its data:
    ``API_KEY_VARIANTS``, ``STATE_GOOSE_VERSIONS``, ``SEED_ROW_STATES``, ``EXTRA_CHECK_STATE``)."""
    if dialect.API_KEY_VARIANTS:
        states = with_api_key_variants(states)
    numbering = dialect.STATE_GOOSE_VERSIONS
    if numbering is not None:
        states = [replace(state, goose_versions=numbering.get(state.name, state.goose_versions)) for state in states]
    seeded = dialect.SEED_ROW_STATES
    states = [
        replace(state, goose_versions=(0, *state.goose_versions)) if state.name in seeded else state
        for state in states
    ]
    extra = dialect.EXTRA_CHECK_STATE
    if extra is None:
        return states
    shape = with_extra_check(prints[extra.based_on], extra)
    return [*states, KnownState(extra.name, extra.revision, extra.description, shape, extra.goose_versions)]


def with_extra_check(base: Fingerprint, extra: ExtraCheckState) -> Fingerprint:
    """``base`` plus the extra CHECK of ``extra`` (the MySQL 8 goose-5 shape: the old
    two-value ``audit_events_chk_1`` beside the new one)."""
    table = base.tables[extra.table]
    changed = replace(
        table,
        checks=table.checks | {normalise_check(extra.check)},
        constraint_names=table.constraint_names | {extra.constraint_name},
    )
    return replace(base, tables={**base.tables, extra.table: changed})


def with_api_key_variants(states: list[KnownState]) -> list[KnownState]:
    """``states`` plus the goose 1-4 shapes of databases created with ``api_key`` from the start
    (merged into a state of the same shape: see :func:`_add_or_merge`)."""
    states = list(states)
    for variant in _api_key_variants({state.name: state for state in states}):
        _add_or_merge(states, variant)
    return states


def _api_key_variants(by_name: dict[str, KnownState]) -> list[KnownState]:
    """Goose 1-4 shapes of databases created with ``api_key`` from the start."""
    table, old, new = RENAMED_COLUMN
    return [
        KnownState(
            f"{name}-api_key",
            by_name[name].revision,
            f"goose version {goose} created with api_key from the start",
            by_name[name].fingerprint.with_renamed_column(table, old, new),
            (goose,),
        )
        for name, goose in _API_KEY_VARIANTS.items()
    ]


def _add_or_merge(states: list[KnownState], variant: KnownState) -> None:
    """Add ``variant``, or, when a state already has its shape, credit that state's goose versions.

    goose 4 created with ``api_key`` has exactly the 0006 shape: it is state 0006, and
    stamping 0006 is right (0006 would have skipped its rename anyway).
    """
    for index, state in enumerate(states):
        if state.fingerprint == variant.fingerprint:
            versions = tuple(sorted({*state.goose_versions, *variant.goose_versions}))
            states[index] = replace(state, goose_versions=versions)
            return
    states.append(variant)


def revision_fingerprints(connection: Connection, *, derive: bool = False) -> dict[str, Fingerprint]:
    """The fingerprint of every revision on this dialect and server version: the committed
    data when it applies (unless ``derive``), else derived on a scratch database (cached)."""
    if not derive:
        committed = known_state_data.load(connection)
        if committed is not None:
            return committed
    key = (connection.dialect.name, tuple(connection.dialect.server_version_info or ()))
    if key not in _cache:
        _cache[key] = _derive(connection)
    return _cache[key]


def _derive(connection: Connection) -> dict[str, Fingerprint]:
    """Run the revisions in the dialect's scratch place (a temporary file, a rolled-back
    schema, a scratch database), fingerprinting each."""
    try:
        with dialect_for(connection).scratch_connection(connection) as scratch:
            return _walk(scratch)
    except ConfigError as exc:
        raise SchemaMismatchError(
            f"cannot derive the known schema states on this server: {exc.message}; nothing was changed",
            hint=exc.hint,
        ) from None


def _walk(scratch: Connection) -> dict[str, Fingerprint]:
    """Run the revisions one at a time inside the caller's transaction, fingerprinting each."""
    prints = {}
    for revision in revisions.ids():
        command.upgrade(make_config(connection=scratch), revision)
        prints[revision] = fingerprint(scratch)
    return prints
