"""Turning library results into text for people: status, history, runs, and live progress.

Progress goes to stderr: on a terminal, one line per revision that is rewritten when it
finishes; elsewhere (logs, CI), plain timestamped lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # type-only: importing them would load Alembic on the fast status path
    from llm_proxy_db.commands import Status
    from llm_proxy_db.executor import Progress, ProgressEvent, RunResult
    from llm_proxy_db.revisions import RevisionInfo


def render_status(status: Status) -> str:
    """Human-readable status, one fact per line."""
    pending = ", ".join(status.pending) if status.pending else "none (up to date)"
    return "\n".join(
        [
            f"database: {status.database}",
            f"current:  {status.current_revision or 'base (no revision applied)'}",
            f"head:     {status.head_revision}",
            f"pending:  {pending}",
            *(f"warning:  {line}" for line in status.checksum_warnings),
        ]
    )


def render_history(history: list[RevisionInfo]) -> str:
    """One line per revision, oldest first."""
    return "\n".join(f"{info.id}  {info.description}" for info in history)


def render_run(result: RunResult) -> str:
    """What a migration run changed."""
    before, after = result.before or "base", result.after or "base"
    warnings = "".join(f"\nwarning: {line}" for line in result.checksum_warnings)
    if not result.steps:
        return f"revision: {after} (nothing to do){warnings}"
    total = sum(step.seconds for step in result.steps)
    return f"revision: {before} -> {after} ({len(result.steps)} step(s), {total:.2f}s){warnings}"


def progress_printer(stream: TextIO | None = None) -> Progress:
    """A progress callback that writes to ``stream`` (default stderr)."""
    out = stream or sys.stderr
    interactive = out.isatty()

    def show(event: ProgressEvent) -> None:
        verb = "upgrading to" if event.direction == "upgrade" else "reverting"
        if event.kind == "apply_start":
            text = f"{verb} {event.revision} ..."
            out.write(f"\r{text}" if interactive else f"{_now()} {text}\n")
        else:
            outcome = "done" if event.kind == "apply_success" else "FAILED"
            text = f"{verb} {event.revision} {outcome} in {event.elapsed:.2f}s"
            out.write(f"\r{text}\n" if interactive else f"{_now()} {text}\n")
        out.flush()

    return show


def stage_printer(stream: TextIO | None = None) -> Callable[[str], None]:
    """A callback for ``migrate verify``'s stages: one ``checking ...`` line each on stderr."""
    out = stream or sys.stderr

    def show(stage: str) -> None:
        out.write(f"checking {stage} ...\n")
        out.flush()

    return show


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
