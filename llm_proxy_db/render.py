"""Turning library results into text for people: status, history, runs, and live progress.

Progress goes to stderr: on a terminal, one line per revision that is rewritten when it
finishes; elsewhere (logs, CI), plain timestamped lines.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from llm_proxy_db.adoption import AdoptionPlan, AdoptionResult
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
            *_adoption_lines(status),
        ]
    )


def _adoption_lines(status: Status) -> list[str]:
    lines = []
    if status.detected_state == "empty":
        lines.append("detected: empty (no tables yet: run `llm-proxy setup`)")
    elif status.detected_state is not None:
        lines.append(f"detected: {status.detected_state} (unversioned: see `llm-proxy migrate adopt --dry-run`)")
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
    "retire_goose": "retire goose: {}",
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
        if event.kind == "adopted":
            text = f"adopted {event.detail}: stamped revision {event.revision}"
            out.write(f"{text}\n" if interactive else f"{_now()} {text}\n")
        elif event.kind == "apply_start":
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
