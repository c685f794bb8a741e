"""Operations that commit as they go and did not end: said by ``status``, refused or resumed.

Where DDL commits on its own (MySQL), a downgrade killed inside a revision leaves the
revision's version recorded over a schema it no longer has, and a restore cut short leaves
every table with part of its rows.  Both write a marker before their first change
(:mod:`llm_proxy_db.dialects.unfinished`) and remove it once they ended and were checked.
While a marker is there:

- ``migrate status`` shows a ``partial:`` line per marker (a downgrade's steps done so far);
- a downgrade from the marked revision resumes it (each step checks whether it is done);
- every other change (``setup``, ``migrate up``, ``adopt``, ``--force-stamp``, the service's
  ``auto_upgrade``) is refused, exit 6, naming the command that finishes the operation;
- an unfinished restore refuses every change until the restore is redone, and every backup
  (:func:`refuse_backup`): a dump of part of a dump's rows is not a copy to go back to;
- every command that reads the database as if it were whole (``migrate rehearse``, ``drift``,
  ``up --dry-run``, ``up --sql`` starting at the recorded revision) is refused the same way
  (:func:`refuse_reading`): what it would read is no state of any revision.
"""

from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from llm_proxy_db.dialects import dialect_for, unfinished
from llm_proxy_db.errors import BackupError, SchemaMismatchError
from llm_proxy_db.migration import revisions


def describe(connection: Connection, scripts: ScriptDirectory | None = None) -> list[str]:
    """One sentence per unfinished operation, saying how to finish it ([] for none)."""
    lines = []
    entries = unfinished.read(connection)
    for entry in entries:
        if entry.kind == unfinished.DOWNGRADE:
            lines.append(_downgrade_line(connection, entry.subject, scripts))
        elif entry.kind == unfinished.RESTORE:
            lines.append(_restore_line(entry))
    connection.commit()
    return lines


def refuse_backup(connection: Connection, what: str) -> None:
    """Refuse (exit 8) a backup of a database whose restore did not finish: its tables hold part
    of a dump's rows, and a dump of them restored would look whole (the marker would not follow)."""
    entries = unfinished.read(connection)
    connection.commit()
    for entry in entries:
        if entry.kind == unfinished.RESTORE:
            raise BackupError(
                f"refusing to back up {what}: {_restore_line(entry)}; a backup of it would "
                "hold part of the rows",
                hint=f"{_good_copies(entry, entries)}; nothing was written",
            )


def refuse_or_resume(
    connection: Connection, current: str | None, target: str | None, scripts: ScriptDirectory | None = None
) -> None:
    """Under the migration lock, before anything is changed: refuse any change while an
    operation is unfinished, except the downgrade from the very revision being reverted."""
    entries = unfinished.read(connection)
    connection.commit()
    for entry in entries:
        resuming = (
            entry.kind == unfinished.DOWNGRADE and current == entry.subject
            and revisions.position(target, scripts) < revisions.position(current, scripts)
        )
        if resuming:
            continue
        refusal = _refusal(connection, entry, entries, scripts, "change the database", "nothing was changed")
        if refusal is not None:
            raise refusal


def refuse_reading(connection: Connection, what: str, scripts: ScriptDirectory | None = None) -> None:
    """Refuse (exit 6, as a change is refused) to ``what`` (``rehearse``, ``compare DB``): a
    command that reads the database as if it were whole, while a restore or a downgrade that
    commits as it goes has not finished.  The hint says how to finish that operation."""
    refusal = reading_refusal(connection, what, scripts)
    if refusal is not None:
        raise refusal


def reading_refusal(
    connection: Connection, what: str, scripts: ScriptDirectory | None = None
) -> SchemaMismatchError | None:
    """:func:`refuse_reading`'s error, returned (None: nothing is unfinished)."""
    entries = unfinished.read(connection)
    connection.commit()
    for entry in entries:
        refusal = _refusal(connection, entry, entries, scripts, what, "then run this again")
        if refusal is not None:
            return refusal
    return None


def _refusal(
    connection: Connection,
    entry: unfinished.Unfinished,
    entries: list[unfinished.Unfinished],
    scripts: ScriptDirectory | None,
    what: str,
    then: str,
) -> SchemaMismatchError | None:
    """The refusal to ``what`` while ``entry`` is unfinished (None for a kind that refuses nothing)."""
    if entry.kind == unfinished.RESTORE:
        return SchemaMismatchError(
            f"refusing to {what}: {_restore_line(entry)}",
            hint=f"{_good_copies(entry, entries)}; {then}",
        )
    if entry.kind == unfinished.DOWNGRADE:
        parent = _parent(entry.subject, scripts)
        return SchemaMismatchError(
            f"refusing to {what}: {_downgrade_line(connection, entry.subject, scripts)}",
            hint=f"finish the downgrade first: `llm-proxy-db migrate down --to {parent}` (it skips the "
            f"steps already done), then `llm-proxy-db setup` to return to head; {then}",
        )
    return None


def forget_if_untouched(connection: Connection, revision: str, scripts: ScriptDirectory | None = None) -> None:
    """After a downgrade of ``revision`` failed with an error (not a kill): drop its marker when
    none of its listed steps is done, so a refusal before any change blocks nothing."""
    module = _script(scripts).get_revision(revision).module
    progress = dialect_for(connection).reverted_steps(connection, module)
    connection.commit()
    if progress is not None and progress[0] == 0:
        unfinished.clear(connection, unfinished.DOWNGRADE)


def _downgrade_line(connection: Connection, revision: str, scripts: ScriptDirectory | None) -> str:
    module = _script(scripts).get_revision(revision).module
    progress = dialect_for(connection).reverted_steps(connection, module)
    done = ""
    if progress is not None:
        count, steps = progress
        done = (
            f": steps 1-{count} of {len(steps)} done ({'; '.join(steps[:count])})"
            if count
            else f": none of its {len(steps)} steps done yet (a statement may still be running)"
        )
    parent = _parent(revision, scripts)
    return (
        f"{revision} partly reverted (a downgrade to {parent} stopped part-way{done}); the database "
        f"still records {revision} (run `llm-proxy-db migrate down --to {parent}` to finish it)"
    )


def _restore_line(entry: unfinished.Unfinished) -> str:
    return (
        f"the restore of {entry.subject} started {entry.started_at:%Y-%m-%d %H:%M:%S} UTC did not "
        f"finish: the tables may hold part of its rows (redo it: `llm-proxy-db db restore {entry.subject} --force`)"
    )


def _good_copies(entry: unfinished.Unfinished, entries: list[unfinished.Unfinished]) -> str:
    """The hint: redo the restore, or go back to the safety dump taken before it (when there was one)."""
    redo = f"redo the restore: `llm-proxy-db db restore {entry.subject} --force`"
    before = replaced_by(entries)
    return f"{redo}, or go back to what the database held before it: `llm-proxy-db db restore {before} --force`" \
        if before else redo


def replaced_by(entries: list[unfinished.Unfinished]) -> str | None:
    """The safety dump of what the database held before its unfinished restore (None: it held nothing)."""
    return next((entry.subject for entry in entries if entry.kind == unfinished.REPLACED), None)


def _parent(revision: str, scripts: ScriptDirectory | None) -> str:
    return _script(scripts).get_revision(revision).down_revision or "base"  # type: ignore[return-value]


def _script(scripts: ScriptDirectory | None) -> ScriptDirectory:
    return scripts if scripts is not None else revisions.script_directory()
