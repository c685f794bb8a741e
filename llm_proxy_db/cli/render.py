"""Turning library results into text for people: status, history, runs, and live progress.

Progress goes to stderr: on a terminal, one line per revision that is rewritten when it
finishes; elsewhere (logs, CI), plain timestamped lines.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # type-only: importing them would load Alembic on the fast status path
    from llm_proxy_db.adoption.adopt import AdoptionPlan, AdoptionResult
    from llm_proxy_db.commands import Status
    from llm_proxy_db.migration.executor import Progress, ProgressEvent, RunResult
    from llm_proxy_db.migration.revision_info import RevisionState
    from llm_proxy_db.migration.run_log_entry import Entry
    from llm_proxy_db.safety.backup import RestoreResult
    from llm_proxy_db.safety.dry_run import UpgradePlan
    from llm_proxy_db.safety.rehearse import RehearsalResult


def render_status(status: Status) -> str:
    """Human-readable status, one fact per line."""
    pending = ", ".join(status.pending) if status.pending else "none (up to date)"
    if not status.pending and not status.up_to_date:
        pending = "none after the stamp (run `llm-proxy-db setup` to adopt)"
    if status.unfinished:
        pending = "not known until the operation named by `partial:` is finished"
    return "\n".join(
        [
            f"database: {status.database}",
            f"current:  {status.current_revision or 'base (no revision applied)'}",
            f"head:     {status.head_revision}",
            f"pending:  {pending}",
            *(f"warning:  {line}" for line in status.checksum_warnings),
            *_token_id_lines(status.tokens_without_id),
            *_empty_token_id_lines(status.tokens_with_empty_id),
            *([f"partial:  {status.partly_applied} (run `llm-proxy-db setup` again to finish it)"]
              if status.partly_applied else []),
            *(f"partial:  {line}" for line in status.unfinished),
            *([f"cluster:  {status.topology['summary']}"] if status.topology else []),
            *_adoption_lines(status),
        ]
    )


def _token_id_lines(missing: int) -> list[str]:
    if not missing:
        return []
    return [
        f"warning:  {missing} token(s) have no id (written by a release from before the token-id "
        "change); the service cannot address them by id: run `llm-proxy-db setup` to give them one"
    ]


def _empty_token_id_lines(empty: int) -> list[str]:
    if not empty:
        return []
    return [
        f"warning:  {empty} token(s) have the id '' (written without id by a release from before the "
        "token-id change, on a server without strict mode); the service cannot address them by id: once no "
        "old replica is left, run `UPDATE tokens SET id = UUID() WHERE id = ''` (docs/operations.md)"
    ]


def _adoption_lines(status: Status) -> list[str]:
    lines = []
    if status.unfinished and status.current_revision is None:
        lines.append("detected: nothing to adopt (a restore did not finish: see partial)")
    elif status.detected_state == "empty":
        lines.append("detected: empty (no tables yet: run `llm-proxy-db setup`)")
    elif status.detected_state is not None:
        lines.append(f"detected: {status.detected_state} (unversioned: see `llm-proxy-db migrate adopt --dry-run`)")
    record = status.adopted_from
    if record:
        forced = " (FORCED, unverified)" if record["forced"] else ""
        lines.append(
            f"adopted:  from {record['state']} at {record['adopted_at']}, "
            f"stamped {record['stamped_revision']}{forced}"
        )
    return lines


_ACTION_TEXT = {
    "stamp": "stamp revision {}",
    "record_adoption": "record the adoption from state {}",
    "sync_goose": "goose in step: {}",
    "upgrade": "upgrade to {}",
}


def render_adoption_plan(plan: AdoptionPlan) -> str:
    """The detected state and the planned steps, one per line."""
    detected = plan.detection
    state = detected.state_name
    if detected.state is not None:
        state += f" ({detected.state.description})"
    lines = [f"detected: {state}"]
    if detected.goose_version is not None:
        lines.append(f"goose:    goose_db_version at version {detected.goose_version}")
    others = detected.fingerprint.other_tables
    if others:
        lines.append(f"other:    {', '.join(others)} (not ours: listed, never compared)")
    lines.append("plan:" if plan.actions else "plan:     nothing to do")
    lines.extend(f"  - {_ACTION_TEXT[a.kind].format(a.detail)}" for a in plan.actions)
    return "\n".join(lines)


def render_adoption(result: AdoptionResult) -> str:
    """The plan, then what the run changed (or that a dry run changed nothing)."""
    text = render_adoption_plan(result.plan)
    if result.run is None:
        return f"{text}\ndry run: nothing was changed"
    return f"{text}\n{render_run(result.run)}"


def render_history(history: list[RevisionState]) -> str:
    """One line per revision, oldest first: id, applied (and when), description."""
    return "\n".join(f"{info.id}  {_applied(info)}{info.description}" for info in history)


def _applied(info: RevisionState) -> str:
    if info.applied is None:
        return ""
    if not info.applied:
        return f"{'pending':<30}  "
    when = info.applied_at.strftime("%Y-%m-%d %H:%M:%SZ") if info.applied_at else "(no record)"
    return f"{'applied ' + when:<30}  "


def render_log(entries: list[Entry]) -> str:
    """One line per recorded run, oldest first."""
    if not entries:
        return "no runs recorded (this tool has not changed this database yet)"
    lines = []
    for entry in entries:
        moves = f"{entry.from_revision or 'base'} -> {entry.to_revision or 'base'}"
        backup = f"  backup {entry.backup_file}" if entry.backup_file else ""
        lines.append(
            f"{entry.started_at:%Y-%m-%d %H:%M:%S}  {entry.action:<11} {entry.revision or '-':<5} "
            f"{moves:<14} {entry.outcome:<8} {entry.seconds:7.3f}s  {entry.os_user}@{entry.host}{backup}"
        )
    return "\n".join(lines)


def render_run(result: RunResult) -> str:
    """What a migration run changed, and the backup taken before it."""
    before, after = result.before or "base", result.after or "base"
    warnings = "".join(f"\nwarning: {line}" for line in result.checksum_warnings)
    filled = getattr(result, "filled_token_ids", 0)
    if filled:
        warnings += f"\ntokens:   gave {filled} token(s) without id (an older release wrote them) a new id"
    adopted = ""
    if result.adopted is not None:  # stamped first: say so, even when nothing else ran
        adopted = f"unversioned (detected {result.adopted}) -> {before}, adopted"
        if not result.steps:
            return f"revision: {adopted}{warnings}"
        adopted += "; "
    if not result.steps:
        return f"revision: {after} (nothing to do){warnings}"
    total = sum(step.seconds for step in result.steps)
    lines = [f"revision: {adopted}{before} -> {after} ({len(result.steps)} step(s), {total:.2f}s)"]
    backup = getattr(result, "backup", None)
    if backup is not None:
        lines.append(f"backup:   {backup}")
    retried = [f"{step.revision}: {step.lock_retries}" for step in result.steps if step.lock_retries]
    if retried:
        lines.append(f"lock retries: {', '.join(retried)} (a table was busy; tried again)")
    return "\n".join(lines) + warnings


def render_upgrade_plan(plan: UpgradePlan) -> str:
    """``migrate up --dry-run``: each pending revision with its locks, rows and expected time."""
    lines = [
        f"database: {plan.database}",
        f"current:  {plan.current or 'base'}",
        f"target:   {plan.target or 'base'}",
    ]
    if plan.note:
        lines.append(f"note:     {plan.note}")
    if not plan.steps:
        return "\n".join([*lines, "plan:     nothing to do", "dry run: nothing was changed"])
    lines.append("plan:")
    for step in plan.steps:
        lines.append(f"  {step.revision}  {step.description}")
        lines.append(f"        locks:    {step.locks}")
        if step.table is not None:
            lines.append(f"        {step.work + ':':<9} {step.rows:,} row(s) of {step.table}")
        lines.append(f"        expected: {_duration(step.expected_seconds)}")
    if plan.backup is not None:
        size = f" (~{_size(plan.backup_bytes)})" if plan.backup_bytes is not None else ""
        lines.append(f"backup:   {plan.backup}{size}")
    if plan.database_bytes is not None:
        lines.append(f"size:     the database takes ~{_size(plan.database_bytes)}")
    lines.append(f"expected: {_duration(plan.expected_seconds)} in all (estimates: docs/performance.md; "
                 "lock waits not counted)")
    lines.append("dry run: nothing was changed")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 120:
        return f"~{seconds:.0f} s"
    return f"~{seconds / 60:.0f} min"


def _size(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def render_restore(result: RestoreResult) -> str:
    """What a restore did, and what to run next."""
    lines = [
        f"database: {result.database}",
        f"restored: {result.restored_from} (revision {result.revision or 'base'})",
    ]
    if result.origin is not None:
        lines.append(f"backup taken of: {result.origin}")
    if result.safety_copy is not None:
        damaged = " (it was damaged: replaced as a file)" if result.replaced_damaged else ""
        lines.append(f"previous database kept as: {result.safety_copy}{damaged}")
    lines.append("next: llm-proxy-db migrate up (if the restored revision is behind head)")
    return "\n".join(lines)


def render_rehearsal(result: RehearsalResult) -> str:
    """Per-revision timings on the copy, then the outcome."""
    lines = [f"rehearsal on a copy of {result.database} (the database itself is untouched)"]
    if result.adopted is not None:
        lines.append(f"  adopted {result.adopted}: stamped revision {result.stamped} (unversioned)")
    lines += [f"  {step.revision}  ok      {step.seconds:8.2f}s" for step in result.steps]
    if result.failed_revision:
        lines.append(f"  {result.failed_revision}  FAILED")
    if not result.steps and result.ok:
        lines.append(f"  nothing pending at revision {result.before or 'base'}")
    total = sum(step.seconds for step in result.steps)
    outcome = "OK" if result.ok else f"FAILED: {result.error}"
    lines.append(f"outcome: {outcome} ({len(result.steps)} revision(s), {total:.2f}s)")
    return "\n".join(lines)


def progress_printer(stream: TextIO | None = None) -> Progress:
    """A progress callback writing to ``stream`` (default stderr).

    On a terminal, the running revision's line shows a live elapsed time and is rewritten
    when it finishes; elsewhere (logs, CI), each event is one plain timestamped line.
    """
    out = stream or sys.stderr
    return _TerminalProgress(out) if out.isatty() else _LogProgress(out)


def describe_event(event: ProgressEvent) -> str:
    """One human sentence for a progress event."""
    verb = "upgrading to" if event.direction == "upgrade" else "reverting"
    if event.kind == "apply_start":
        return f"{verb} {event.revision} ..."
    if event.kind in ("apply_success", "apply_failure"):
        outcome = "done" if event.kind == "apply_success" else "FAILED"
        return f"{verb} {event.revision} {outcome} in {event.elapsed:.2f}s"
    if event.kind == "lock_wait":
        return f"{event.detail} ({event.elapsed:.0f}s so far)"
    if event.kind == "lock_acquired":
        return f"took the migration lock after {event.elapsed:.1f}s"
    if event.kind == "backup_done":
        return f"backup written and checked: {event.detail}"
    if event.kind == "adopted":
        return f"adopted {event.detail}: stamped revision {event.revision}"
    if event.kind == "step":
        return f"{verb} {event.revision}: {event.detail}"
    if event.kind == "lock_retry":
        return f"{verb} {event.revision}: {event.detail}"
    if event.kind == "backfill":
        return f"{verb} {event.revision}: {describe_rows(event)}"
    if event.kind == "throttle":
        return f"{verb} {event.revision}: {event.detail}"
    return event.detail or event.kind


def describe_rows(event: ProgressEvent) -> str:
    """Row work as one phrase, the same for every dialect:
    ``copy tokens 250,000/1,000,000 rows (25%), 17,200 rows/s, 44s left``."""
    share = f" ({min(1.0, event.done / event.total):.0%})" if event.total else ""
    text = f"{event.phase or event.detail} {event.done:,}/{event.total:,} rows{share}"
    if event.rate > 0:
        text += f", {event.rate:,.0f} rows/s"
    if event.eta is not None and event.done < event.total:
        text += f", {_clock(event.eta)} left"
    return text


def _clock(seconds: float) -> str:
    """``44s``, ``3m05s``, ``1h02m``."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_bar(done: int, total: int, width: int = 24) -> str:
    """``[#####.....]  45%`` for ``done`` of ``total``."""
    share = min(1.0, done / total) if total else 1.0
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%}"


class _LogProgress:
    """Plain timestamped lines, for logs and CI: every event, except that row progress is
    written when a phase starts and ends and at most every :attr:`EVERY` seconds between."""

    EVERY = 10.0  # seconds between two row-progress lines of a long phase

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last_backfill = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        between = event.kind == "backfill" and 0 < event.done < event.total
        if between and time.monotonic() - self._last_backfill < self.EVERY:
            return
        if event.kind == "backfill":
            self._last_backfill = time.monotonic()
        self.out.write(f"{_now()} {describe_event(event)}\n")
        self.out.flush()


class _TerminalProgress:
    """The running revision with a live elapsed time, rewritten in place when it ends."""

    TICK = 0.2

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._bar: _RichRows | None = None

    def __call__(self, event: ProgressEvent) -> None:
        self._stop_ticker()
        if event.kind == "backfill":  # a live bar, rewritten in place
            self._rows(event)
            return
        self._end_rows()
        text = describe_event(event)
        if event.kind == "apply_start":
            self._start_ticker(text)
        else:
            self._write(f"\r{text}\x1b[K\n")

    def _rows(self, event: ProgressEvent) -> None:
        """Rich's bar when rich is installed (it is, with Typer), else a plain one."""
        if self._bar is None:
            self._bar = _rich_bar(self.out)
        if self._bar is not None:
            self._bar.show(event)
        else:
            self._write(f"\r{progress_bar(event.done, event.total)} {describe_event(event)}\x1b[K")

    def _end_rows(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _start_ticker(self, text: str) -> None:
        stop = self._stop = threading.Event()
        started = time.monotonic()

        def tick() -> None:
            while not stop.is_set():
                self._write(f"\r{text} {time.monotonic() - started:.1f}s\x1b[K")
                stop.wait(self.TICK)

        self._thread = threading.Thread(target=tick, daemon=True)
        self._thread.start()

    def _stop_ticker(self) -> None:
        if self._stop is not None and self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._stop = self._thread = None

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()


class _RichRows:
    """A rich progress bar for row work on a terminal: one line per phase (``copy tokens``,
    ``fill tokens.id``) with the bar, rows, rate and time left, all taken from the events'
    own fields (rich's own speed estimate is not used, so the terminal and the logs agree)."""

    def __init__(self, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

        console = Console(file=out, force_terminal=True, highlight=False, soft_wrap=False)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[left]}"),
            console=console, auto_refresh=False, transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started = False

    def show(self, event: ProgressEvent) -> None:
        """Draw ``event``'s phase at its rows, rate and time left."""
        if not self._started:
            self._progress.start()
            self._started = True
        phase = event.phase or event.detail
        rate = f"{event.rate:,.0f} rows/s" if event.rate > 0 else ""
        left = f"{_clock(event.eta)} left" if event.eta is not None and event.done < event.total else ""
        task = self._tasks.get(phase)
        if task is None:
            task = self._tasks[phase] = self._progress.add_task(
                f"{event.revision} {phase}", total=max(event.total, 1), rate=rate, left=left
            )
        self._progress.update(task, completed=event.done, total=max(event.total, event.done, 1), rate=rate, left=left)
        self._progress.refresh()

    def close(self) -> None:
        """Leave the bars as last drawn and give the terminal back to plain lines."""
        if self._started:
            self._progress.stop()


def _rich_bar(out: TextIO) -> _RichRows | None:
    try:
        return _RichRows(out)
    except ImportError:  # rich is optional: the plain bar then
        return None


def stage_printer(stream: TextIO | None = None) -> Callable[[str], None]:
    """A callback for ``migrate verify``'s stages: one ``checking ...`` line each on stderr."""
    out = stream or sys.stderr

    def show(stage: str) -> None:
        out.write(f"checking {stage} ...\n")
        out.flush()

    return show


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
