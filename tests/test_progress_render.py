"""How multi-transaction revisions show their progress: steps, retries, a backfill bar."""

from __future__ import annotations

import io

from llm_proxy_db.cli.render import _LogProgress, _TerminalProgress, describe_event, progress_bar, render_run
from llm_proxy_db.migration.executor import ProgressEvent, RunResult, StepTiming


def _backfill(done: int, total: int = 1000) -> ProgressEvent:
    return ProgressEvent("backfill", "0005", "upgrade", 1.0, f"tokens.id: {done}/{total} rows", done, total)


def test_events_of_an_online_revision_read_as_sentences() -> None:
    """Steps, lock retries and backfill progress name their revision."""
    step = ProgressEvent("step", "0005", "upgrade", detail="tokens.id filled")
    retry = ProgressEvent("lock_retry", "0003", "upgrade", detail="add projects.is_active: retrying")
    assert describe_event(step) == "upgrading to 0005: tokens.id filled"
    assert describe_event(retry) == "upgrading to 0003: add projects.is_active: retrying"
    assert describe_event(_backfill(10)) == "upgrading to 0005: backfill tokens.id: 10/1000 rows"
    paused = ProgressEvent("throttle", "0005", "upgrade", detail="paused: replica lag 2.3 s (walreceiver)")
    assert describe_event(paused) == "upgrading to 0005: paused: replica lag 2.3 s (walreceiver)"
    assert progress_bar(500, 1000, width=10) == "[#####.....]  50%"
    assert progress_bar(0, 0, width=4) == "[####] 100%"


def test_logs_get_a_backfill_line_every_few_seconds_not_every_batch() -> None:
    """Start and end always; in between at most one line per interval."""
    out = io.StringIO()
    log = _LogProgress(out)
    for done in (0, 100, 200, 300, 1000):
        log(_backfill(done))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].endswith("0/1000 rows") and lines[-1].endswith("1000/1000 rows")


def test_a_terminal_gets_a_live_bar() -> None:
    """The bar is rewritten in place (carriage return, no newline)."""
    out = io.StringIO()
    _TerminalProgress(out)(_backfill(250))
    assert out.getvalue().startswith("\r[######") and not out.getvalue().endswith("\n")


def test_the_summary_counts_lock_retries() -> None:
    """A run that had to retry says which revision and how often."""
    result = RunResult("0004", "0005", [StepTiming("0005", "upgrade", 2.0, lock_retries=2)])
    assert "lock retries: 0005: 2" in render_run(result)
    assert "lock retries" not in render_run(RunResult("0004", "0005", [StepTiming("0005", "upgrade", 2.0)]))
