"""Adopting a database that has no ``alembic_version``: detect its state, stamp, migrate on.

The decision, for a database without ``alembic_version``:

- none of our tables -> migrate from base;
- the fingerprint equals exactly one known state -> stamp that state's revision, record the
  adoption (:mod:`llm_proxy_db.migration.adoption_record`), bring ``goose_db_version`` in step with the
  stamped revision (:mod:`llm_proxy_db.service.goose`, PostgreSQL), all in one transaction; then
  migrate to the target, one revision per transaction;
- anything else -> change nothing and raise :class:`SchemaMismatchError` with the
  differences against the nearest known state.

A ``goose_db_version`` table is a hint, never proof: its version must name the state the
fingerprint found (goose 1 -> ``goose-1``, goose N -> our revision N+1), or we refuse.
``force_stamp`` stamps a revision without verification, for an operator who has checked
the differences by hand; the plan carries a warning that says what it risks.

:func:`plan` only reads; :func:`execute` carries a plan out.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import replace

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from llm_proxy_db.adoption import known_state_data
from llm_proxy_db.adoption.known_states import KnownState, known_states, revision_fingerprints
from llm_proxy_db.adoption.plans import (  # noqa: F401 (re-exported)
    EMPTY,
    KNOWN,
    UNKNOWN,
    VERSIONED,
    Action,
    AdoptionPlan,
    AdoptionResult,
    Detection,
)
from llm_proxy_db.adoption.service_wait import wait_for_the_service
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import dialect_for
from llm_proxy_db.dialects.scratch import is_read_only_refusal
from llm_proxy_db.errors import (
    ConfigError,
    LockTimeoutError,
    MigrationError,
    ReadOnlyDatabaseError,
    SchemaAppearedError,
    SchemaMismatchError,
)
from llm_proxy_db.failures import lock_wait_ran_out, translate
from llm_proxy_db.migration import adoption_record, revisions, run_log, unfinished_runs
from llm_proxy_db.migration.executor import Progress, ProgressEvent, RunResult, run
from llm_proxy_db.migration.version_table import current_revision, has_version_table
from llm_proxy_db.schema.fingerprint import Fingerprint, fingerprint, our_tables_present
from llm_proxy_db.schema.fingerprint_diff import diff, distance
from llm_proxy_db.service import artefacts as service_artefacts
from llm_proxy_db.service import goose


def needs_adoption(connection: Connection) -> bool:
    """True for an unversioned database holding our tables or a goose table."""
    if has_version_table(connection):
        return False
    return our_tables_present(connection) or goose.has_goose_table(connection)


def detect(connection: Connection) -> Detection:
    """Identify the database on ``connection``.  Only reads.

    An unversioned database is read once no service's goose run holds the service's
    migration lock (:mod:`llm_proxy_db.adoption.service_wait`).
    """
    if not has_version_table(connection):
        wait_for_the_service(connection)
    print_ = fingerprint(connection)
    if has_version_table(connection):
        return Detection(VERSIONED, print_, current_revision=current_revision(connection))
    goose_at = goose.goose_version(connection)
    if goose_at is not None and goose_at > goose.LATEST_GOOSE_VERSION:
        problem = f"goose_db_version is at version {goose_at}, newer than any this tool knows"
        return Detection(UNKNOWN, print_, goose_version=goose_at, problem=problem)
    if print_.is_empty:
        if goose_at:
            problem = f"goose_db_version says version {goose_at} but none of our tables exists"
            return Detection(UNKNOWN, print_, goose_version=goose_at, problem=problem)
        return Detection(EMPTY, print_, goose_version=goose_at)
    found = _detect_state(connection, print_, goose_at, derive=False)
    if found.kind == UNKNOWN and known_state_data.load(connection) is not None:
        # Matched against the committed data only: derive to be sure before refusing.
        found = _detect_state(connection, print_, goose_at, derive=True)
    part_way = goose_at is not None and not dialect_for(connection).TRANSACTIONAL_DDL
    return replace(found, goose_part_way=part_way) if found.kind == UNKNOWN else found


def _detect_state(connection: Connection, print_: Fingerprint, goose_at: int | None, *, derive: bool) -> Detection:
    """The known state ``print_`` is (service artefacts stripped on SQLite), or the nearest."""
    states = known_states(connection, derive=derive)
    if service_artefacts.left_on(connection):
        for variant, artefacts in service_artefacts.variants(print_)[1:]:
            found = _match(variant, states, goose_at)
            if found.kind == KNOWN:
                return replace(found, fingerprint=print_, artefacts=artefacts)
    return _match(print_, states, goose_at)


def _match(print_: Fingerprint, states: list[KnownState], goose_at: int | None) -> Detection:
    """The one known state ``print_`` is (goose's version agreeing), or the nearest one."""
    matches = [state for state in states if state.fingerprint == print_]
    candidates = states
    problem = None
    if goose_at is not None:
        candidates = [state for state in states if goose_at in state.goose_versions]
        hinted = [state for state in matches if state in candidates]
        if matches and not hinted:
            problem = (
                f"goose_db_version says version {goose_at} but the schema is state "
                f"{matches[0].name}; the two disagree"
            )
        matches = hinted
    if len({state.revision for state in matches}) == 1:
        return Detection(KNOWN, print_, state=matches[0], goose_version=goose_at)
    nearest = min(candidates or states, key=lambda state: distance(print_, state.fingerprint))
    differences = tuple(diff(print_, nearest.fingerprint))
    return Detection(
        UNKNOWN,
        print_,
        goose_version=goose_at,
        nearest=nearest,
        differences=differences,
        problem=problem or f"the schema matches no known state; nearest is {nearest.name}",
    )


def plan(
    connection: Connection, target: str = revisions.HEAD, force_stamp: str | None = None
) -> AdoptionPlan:
    """What adopting the database on ``connection`` would do.  Only reads (a dry run).

    A database a restore or a downgrade left part-way (MySQL) is refused first: its shape is
    no state to adopt or force-stamp, and the refusal says how to finish that operation."""
    # worded for a dry run too: "refusing to adopt ...; then run this again"
    unfinished_runs.refuse_reading(connection, "adopt the database")
    detection = detect(connection)
    target_id = revisions.resolve(target)
    if force_stamp is not None:
        return _forced_plan(connection, detection, target_id, revisions.resolve(force_stamp))
    if detection.kind == UNKNOWN:
        return AdoptionPlan(detection, target_id, refusal=detection.problem)
    stamp = detection.state.revision if detection.state else None
    start = stamp if detection.kind == KNOWN else detection.current_revision
    actions = _actions(detection, stamp, start, target_id, connection.dialect.name)
    return AdoptionPlan(detection, target_id, stamp, actions)


def plan_for_missing_database(target: str = revisions.HEAD) -> AdoptionPlan:
    """The plan for a SQLite file that does not exist yet: create everything from base."""
    detection = Detection(EMPTY, Fingerprint(tables={}))
    target_id = revisions.resolve(target)
    return AdoptionPlan(
        detection, target_id, None, _actions(detection, None, None, target_id, "sqlite")
    )


def refuse_force_stamp(detection: Detection, stamp: str | None) -> None:
    """Raise :class:`ConfigError` unless ``--force-stamp`` can apply to ``detection``: an
    unversioned database holding our tables, and a revision to stamp."""
    if detection.kind in (VERSIONED, EMPTY) or stamp is None:
        raise ConfigError(
            f"--force-stamp needs an unversioned database holding our tables and a revision; "
            f"this one is {detection.state_name}",
            hint="run `llm-proxy-db migrate adopt --dry-run` to see the detected state; nothing was changed",
        )


def _forced_plan(
    connection: Connection, detection: Detection, target_id: str | None, stamp: str | None
) -> AdoptionPlan:
    refuse_force_stamp(detection, stamp)
    assert stamp is not None
    expected = revision_fingerprints(connection)[stamp]
    differences = tuple(diff(detection.fingerprint, expected))
    _refuse_extra_tables(detection, expected, stamp)
    warning = (
        f"FORCED: revision {stamp} is recorded without verification. "
        f"{len(differences)} difference(s) from its schema stay as they are; no revision will "
        "ever create what is missing, and later revisions run against a schema they were not "
        "written for and may fail or damage data. Take a backup first."
    )
    forced = Detection(
        detection.kind,
        detection.fingerprint,
        state=detection.state,
        goose_version=detection.goose_version,
        differences=differences,
    )
    actions = tuple(
        Action(a.kind, f"{a.detail} (FORCED, unverified)") if a.kind == "record_adoption" else a
        for a in _actions(forced, stamp, stamp, target_id, connection.dialect.name)
    )
    warnings = (warning, *differences)
    return AdoptionPlan(forced, target_id, stamp, actions, forced=True, warnings=warnings)


def _refuse_extra_tables(detection: Detection, expected: Fingerprint, stamp: str) -> None:
    """A stamp below tables the database already has: the next revision would create them."""
    extra = sorted(set(detection.fingerprint.tables) - set(expected.tables))
    if extra:
        raise SchemaMismatchError(
            f"--force-stamp {stamp} refused: the database already has table(s) "
            f"{', '.join(extra)}, which revision {stamp} does not have, so a later revision "
            "would fail creating them; nothing was changed",
            differences=tuple(f"unexpected table {name}" for name in extra),
            hint="force-stamp a revision whose schema has every table the database has "
            "(see `llm-proxy-db migrate adopt --dry-run` for the nearest state)",
        )


def _actions(
    detection: Detection,
    stamp: str | None,
    start: str | None,
    target_id: str | None,
    dialect: str,
) -> tuple[Action, ...]:
    if revisions.position(target_id) < revisions.position(start):
        raise ConfigError(
            f"the database is already at revision {start}; adopting it to {target_id or 'base'} "
            "would be a downgrade",
            hint="adopt to head (the default) and use migrate down afterwards if you must",
        )
    actions: list[Action] = []
    if stamp and detection.kind != VERSIONED:
        actions.append(Action("stamp", stamp))
        actions.append(Action("record_adoption", detection.state_name))
    if stamp and detection.kind != VERSIONED and goose.runs_goose(dialect):
        actions.append(Action("sync_goose", _goose_detail(dialect, stamp)))
    actions.extend(Action("upgrade", rev) for rev in revisions.between(start, target_id))
    return tuple(actions)


def execute(
    connection: Connection,
    adoption_plan: AdoptionPlan,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
) -> AdoptionResult:
    """Carry out ``adoption_plan``: refuse, or stamp + record + goose in step, then migrate."""
    if adoption_plan.refusal is not None:
        raise mismatch_error(adoption_plan.detection)
    result = AdoptionResult(adoption_plan)
    connection.commit()
    if adoption_plan.detection.kind != VERSIONED:
        result.goose_versions = _hand_over(connection, adoption_plan)
        if progress is not None and adoption_plan.stamp is not None:
            detail = adoption_plan.detection.state_name + (" (FORCED)" if adoption_plan.forced else "")
            progress(ProgressEvent("adopted", adoption_plan.stamp, "stamp", detail=detail))
    result.run = run(
        connection, adoption_plan.target, progress=progress, version_locations=version_locations
    )
    if adoption_plan.detection.kind != VERSIONED and adoption_plan.stamp is not None:
        result.run.adopted = adoption_plan.detection.state_name
    return result


def _goose_detail(dialect: str, stamp: str) -> str:
    version = goose.goose_version_at(dialect, stamp) or 0
    recorded = f"versions 1-{version}" if version else "no version"
    return f"goose_db_version records {recorded}, then follows every revision"


def _hand_over(connection: Connection, adoption_plan: AdoptionPlan) -> list[int] | None:
    """Stamp, record and bring goose in step in one transaction: all of it or nothing."""
    try:
        with connection.begin():
            _stamp_and_record(connection, adoption_plan)
            if adoption_plan.stamp is None:
                return None
            return goose.sync(connection, adoption_plan.stamp)
    except sa.exc.DBAPIError as exc:
        waited = translate(exc)
        if isinstance(waited, LockTimeoutError):  # a lock held elsewhere: not a refusal of our writes
            raise waited from None
        detail = str(exc.orig or exc).strip().splitlines()[0]
        if is_read_only_refusal(exc):
            raise ReadOnlyDatabaseError(
                f"adoption refused, the database only reads; nothing was changed: {detail}",
                hint="point DATABASE_URL (or LLM_PROXY_DIRECT_URL) at the primary, not a standby",
            ) from None
        raise MigrationError(
            f"adoption failed while stamping and was rolled back, nothing was changed: {detail}",
            hint="the database refused the adoption's writes: check the user's privileges and "
            "that goose_db_version has goose's own columns (id, version_id, is_applied, tstamp)",
        ) from None


def _stamp_and_record(connection: Connection, adoption_plan: AdoptionPlan) -> None:
    if adoption_plan.stamp is None:
        return
    context = MigrationContext.configure(connection)
    context.stamp(revisions.script_directory(), adoption_plan.stamp)
    detection = adoption_plan.detection
    record = adoption_record.AdoptionRecord(
        detected_state=detection.state_name if detection.state else "unknown",
        stamped_revision=adoption_plan.stamp,
        goose_version=detection.goose_version,
        forced=adoption_plan.forced,
        differences=detection.differences if adoption_plan.forced else (),
    )
    adoption_record.write(connection, record)
    moment = run_log.now()
    action = "force_stamp" if adoption_plan.forced else "adopt"
    detail = f"detected state {record.detected_state}"
    entry = run_log.Entry(action, adoption_plan.stamp, None, adoption_plan.stamp, moment, moment)
    run_log.write(connection, dataclasses.replace(entry, detail=detail))


def adopt(
    connection: Connection,
    target: str = revisions.HEAD,
    *,
    dry_run: bool = False,
    force_stamp: str | None = None,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
) -> AdoptionResult:
    """Plan, then (unless ``dry_run``) execute.  An unknown state raises even on a dry run."""
    adoption_plan = plan(connection, target, force_stamp)
    connection.rollback()
    if adoption_plan.refusal is not None:
        raise mismatch_error(adoption_plan.detection)
    if dry_run:
        return AdoptionResult(adoption_plan)
    return execute(
        connection, adoption_plan, progress=progress, version_locations=version_locations
    )


class GuardedAdoption:
    """The guarded path's runner for a database that may be unversioned (``setup``, ``migrate up``).

    :meth:`precheck` runs before the migration lock: it plans the adoption of an unversioned
    database (reads only) and refuses one of unknown shape, so a refused database costs no
    lock file, no wait and no backup (nor a restart loop a pile of them).  :meth:`check`
    (``guarded_run``'s ``check``) runs under the lock before any backup: it plans again,
    unless the dialect can tell cheaply that the schema did not change since the precheck
    (SQLite's schema cookie).  Calling the object then carries that plan out on the same
    connection, or runs the revisions of a versioned database.
    """

    def __init__(self, *, progress: Progress | None = None, version_locations: Sequence[str] = ()) -> None:
        self.progress = progress
        self.version_locations = version_locations
        self.planned: AdoptionPlan | None = None
        self.checked = False
        self._cookie: object | None = None

    def precheck(self, connection: Connection, target: str | None) -> None:
        """Before the lock: raise when adopting would be refused (reads only).

        The schema may be moving meanwhile (another migrator holds the lock and is half-way):
        a read that the server refuses then (``relation "goose_db_version" does not exist``
        for the loser of a race) proves nothing, and the decision is left to :meth:`check`,
        under the lock.  A lock wait that ran out is final: it lasted the whole bound, and the
        check would wait as long again (``setup --lock-timeout 5`` gave up after 11 s)."""
        try:
            self._plan(connection, target)
        except sa.exc.DBAPIError as exc:
            connection.rollback()
            if lock_wait_ran_out(exc):  # waited the whole --lock-timeout already: not twice
                raise
            self.planned, self._cookie, self.checked = None, None, False
            return
        self._cookie = dialect_for(connection).schema_cookie(connection) if self.planned else None
        connection.rollback()
        self.checked = False

    def check(self, connection: Connection, target: str | None) -> None:
        """Under the lock: plan the adoption (an unversioned database only); raise when it
        would be refused.  The precheck's plan is kept when the schema certainly did not change."""
        cookie = self._cookie
        if cookie is None or dialect_for(connection).schema_cookie(connection) != cookie:
            self._plan(connection, target)
        connection.rollback()
        self.checked = True

    def _plan(self, connection: Connection, target: str | None) -> None:
        self.planned = None
        if needs_adoption(connection):
            cookie = dialect_for(connection).schema_cookie(connection)
            self.planned = plan(connection, target or revisions.BASE)
            connection.rollback()
            if self.planned.refusal is not None and _schema_moving(connection, cookie):
                # The service creates its schema statement by statement (SQLite, no lock of
                # ours it respects): a shape seen half-way is looked at again once it settles.
                self.planned = plan_when_settled(connection, target or revisions.BASE)
            if self.planned.refusal is not None:
                raise mismatch_error(self.planned.detection)

    def __call__(self, connection: Connection, target: str | None) -> RunResult:
        """Adopt as planned by :meth:`check` (which runs first if it has not), or migrate."""
        if not self.checked:
            self.check(connection, target)
        if self.planned is None:
            try:
                return run(connection, target, progress=self.progress, version_locations=self.version_locations)
            except SchemaAppearedError:
                self.planned = plan_when_settled(connection, target or revisions.BASE)
        adopted = execute(
            connection, self.planned, progress=self.progress, version_locations=self.version_locations
        )
        assert adopted.run is not None
        return adopted.run


def check_adoptable(settings: Settings, target: str | None = revisions.HEAD) -> None:
    """Refuse an unversioned database of unknown shape before anything else (reads only).

    For callers outside the guarded path (a rehearsal refuses before copying); the guarded
    path checks under its lock with :class:`GuardedAdoption`.
    """
    if settings.known_missing():
        return
    with connect(settings, create=False) as connection:  # a plain BEGIN: reads never wait for writers
        if needs_adoption(connection):
            planned = plan(connection, target or revisions.BASE)
            if planned.refusal is not None:
                raise mismatch_error(planned.detection)


def run_or_adopt(
    connection: Connection,
    target: str | None,
    *,
    progress: Progress | None = None,
    version_locations: Sequence[str] = (),
) -> RunResult:
    """Move the database to ``target``: adopt it first when it is unversioned but not empty.

    The shape of a runner for the guarded path (lock, backup): ``upgrade``, ``setup`` and
    startup use it so that a database the service created is verified and stamped, never
    re-created with ``CREATE TABLE`` over existing tables.
    """
    if not needs_adoption(connection):
        try:
            return run(connection, target, progress=progress, version_locations=version_locations)
        except SchemaAppearedError:
            appeared = plan_when_settled(connection, target or revisions.BASE)
            executed = execute(connection, appeared, progress=progress, version_locations=version_locations)
            assert executed.run is not None
            return executed.run
    connection.rollback()
    adopted = adopt(
        connection,
        target or revisions.BASE,
        progress=progress,
        version_locations=version_locations,
    )
    assert adopted.run is not None
    return adopted.run


# The service creates its schema statement by statement in a few milliseconds: a schema that
# appeared under us is looked at again, a little later, until it is a known state.
SETTLE_TRIES, SETTLE_PAUSE = 20, 0.25


def _schema_moving(connection: Connection, cookie: object | None) -> bool:
    """Whether the schema changed since ``cookie`` was read, or changes within a
    :data:`SETTLE_PAUSE` (False where the dialect has no cheap cookie)."""
    if cookie is None:
        return False
    cookies = dialect_for(connection)
    for pause in (0.0, SETTLE_PAUSE):
        time.sleep(pause)
        connection.rollback()  # a fresh read: the cookie of the snapshot held is the old one
        now = cookies.schema_cookie(connection)
        connection.rollback()
        if now != cookie:
            return True
    return False


def plan_when_settled(connection: Connection, target: str | None) -> AdoptionPlan:
    """The adoption plan for tables that appeared after the database was found empty (the
    service started meanwhile: :class:`~llm_proxy_db.errors.SchemaAppearedError`).

    The service may still be creating them: the schema is detected again until it is a known
    state (at most :data:`SETTLE_TRIES` times, :data:`SETTLE_PAUSE` s apart); a schema that
    never settles into one is refused as any unknown shape is.
    """
    for attempt in range(SETTLE_TRIES):
        connection.rollback()
        found = plan(connection, target or revisions.BASE)
        connection.rollback()
        if found.refusal is None or attempt == SETTLE_TRIES - 1:
            break
        time.sleep(SETTLE_PAUSE)
    if found.refusal is not None:
        raise mismatch_error(found.detection)
    return found


def mismatch_error(detection: Detection) -> SchemaMismatchError:
    """The refusal: what is wrong, the differences, and the ways forward."""
    lines = [
        f"the database has no alembic_version table and {detection.problem}; nothing was changed"
    ]
    if detection.nearest is not None:
        lines.append(
            f"differences from {detection.nearest.name} ({detection.nearest.description}):"
        )
        lines.extend(f"  - {line}" for line in detection.differences)
    rev = detection.nearest.revision if detection.nearest else "REV"
    if detection.goose_part_way:  # a shape the service's goose runner may be producing
        hint = (
            "goose_db_version says the service's goose runner manages this database: a goose run "
            "may be part-way (a service starting now, or one stopped inside a goose file). If a "
            "service is starting, run again once it has started; otherwise repair the schema by hand "
            "until it matches a known state and rerun (see docs/adoption.md)"
        )
    else:
        hint = (
            "repair the schema by hand until it matches a known state and rerun "
            "(see docs/adoption.md), or, after taking a backup, run "
            f"`llm-proxy-db migrate adopt --force-stamp {rev}`, which records revision {rev} WITHOUT "
            "verification: whatever differs stays different and later revisions may fail"
        )
    return SchemaMismatchError(
        "\n".join(lines),
        nearest_state=detection.nearest.name if detection.nearest else None,
        differences=detection.differences,
        hint=hint,
    )
