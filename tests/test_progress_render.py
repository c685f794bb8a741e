"""How multi-transaction revisions show their progress: steps, retries, a backfill bar."""

from __future__ import annotations

import io

from llm_proxy_db.cli.render import _LogProgress, _TerminalProgress, describe_event, progress_bar, render_run
from llm_proxy_db.migration.executor import ProgressEvent, RunResult, StepTiming


def _backfill(done: int, total: int = 1000, rate: float = 0.0) -> ProgressEvent:
    eta = (total - done) / rate if rate else None
    return ProgressEvent("backfill", "0005", "upgrade", 1.0, "fill tokens.id", done, total, "fill tokens.id", rate, eta)


def test_events_of_an_online_revision_read_as_sentences() -> None:
    """Steps, lock retries and backfill progress name their revision."""
    step = ProgressEvent("step", "0005", "upgrade", detail="tokens.id filled")
    retry = ProgressEvent("lock_retry", "0003", "upgrade", detail="add projects.is_active: retrying")
    assert describe_event(step) == "upgrading to 0005: tokens.id filled"
    assert describe_event(retry) == "upgrading to 0003: add projects.is_active: retrying"
    assert describe_event(_backfill(10)) == "upgrading to 0005: fill tokens.id 10/1,000 rows (1%)"
    assert describe_event(_backfill(250, rate=5.0)) == (
        "upgrading to 0005: fill tokens.id 250/1,000 rows (25%), 5 rows/s, 2m30s left"
    )
    paused = ProgressEvent("throttle", "0005", "upgrade", detail="paused: replica lag 2.3 s (walreceiver)")
    assert describe_event(paused) == "upgrading to 0005: paused: replica lag 2.3 s (walreceiver)"
    assert progress_bar(500, 1000, width=10) == "[#####.....]  50%"
    assert progress_bar(0, 0, width=4) == "[####] 100%"


def test_logs_get_a_backfill_line_every_few_seconds_not_every_batch(monkeypatch) -> None:
    """Start and end always; in between at most one line per interval (10 s)."""
    from llm_proxy_db.cli import render

    clock = iter([0.0, 0.0, 4.0, 11.0, 11.0, 15.0, 30.0])  # each read: 0, 100, 200, 300 (+1), 400, 1000
    monkeypatch.setattr(render.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    log = _LogProgress(out)
    for done in (0, 100, 200, 300, 400, 1000):
        log(_backfill(done))
    lines = out.getvalue().splitlines()
    assert [line.split(" tokens.id ")[1].split(" rows")[0] for line in lines] == ["0/1,000", "300/1,000", "1,000/1,000"]


def test_a_terminal_gets_rich_bars_from_the_events_own_fields() -> None:
    """Rich draws the bar; rows, rate and time left are the event's, as in the logs."""
    out = io.StringIO()
    show = _TerminalProgress(out)
    show(_backfill(250, rate=5.0))
    show(ProgressEvent("apply_success", "0005", "upgrade", 2.0))
    text = out.getvalue()
    assert "0005 fill tokens.id" in text and "250/1,000 rows" in text and "5 rows/s" in text
    assert "2m30s left" in text and text.endswith("upgrading to 0005 done in 2.00s\x1b[K\n")


def test_without_rich_a_terminal_gets_a_plain_live_bar(monkeypatch) -> None:
    """The bar is rewritten in place (carriage return, no newline)."""
    monkeypatch.setattr("llm_proxy_db.cli.render._rich_bar", lambda _out: None)
    out = io.StringIO()
    _TerminalProgress(out)(_backfill(250))
    assert out.getvalue().startswith("\r[######") and not out.getvalue().endswith("\n")


def test_the_executor_measures_rate_and_time_left_for_every_dialect(monkeypatch) -> None:
    """One measure, from the phase's first event, whatever reported the rows."""
    from llm_proxy_db.migration import executor

    clock = iter([100.0, 100.0, 110.0, 120.0])
    monkeypatch.setattr(executor.time, "monotonic", lambda: next(clock))
    seen: list[ProgressEvent] = []
    counter = executor._RetryCounter(seen.append)
    counter.revision, counter.direction = "0005", "upgrade"
    counter("backfill", "copy tokens", done=0, total=1000)
    counter("backfill", "copy tokens", done=250, total=1000)
    counter("backfill", "copy tokens", done=500, total=1000)
    assert [(e.phase, e.done, e.rate, e.eta) for e in seen] == [
        ("copy tokens", 0, 0.0, None), ("copy tokens", 250, 25.0, 30.0), ("copy tokens", 500, 25.0, 20.0),
    ]
    assert seen[-1].as_dict() == {
        "event": "backfill", "revision": "0005", "direction": "upgrade", "phase": "copy tokens",
        "rows": 500, "total": 1000, "rate": 25.0, "elapsed": 20.0, "eta": 20.0, "detail": "copy tokens",
    }


def test_the_summary_counts_lock_retries() -> None:
    """A run that had to retry says which revision and how often."""
    result = RunResult("0004", "0005", [StepTiming("0005", "upgrade", 2.0, lock_retries=2)])
    assert "lock retries: 0005: 2" in render_run(result)
    assert "lock retries" not in render_run(RunResult("0004", "0005", [StepTiming("0005", "upgrade", 2.0)]))


def test_sqlite_rebuild_reports_rows_rate_and_time_left(sqlite_settings) -> None:
    """Issue 22: SQLite's long rebuild (0005 copies tokens) reports like PostgreSQL's backfill,
    and a log gets its lines (it printed nothing for 58 s)."""
    import sqlalchemy as sa

    from llm_proxy_db import commands
    from llm_proxy_db.database import connect
    from llm_proxy_db.migration import revision_helpers

    commands.upgrade(sqlite_settings, "0004")
    tokens = 2 * revision_helpers.COPY_BATCH_ROWS + 5
    with connect(sqlite_settings) as connection:
        connection.execute(sa.text("INSERT INTO projects (id, name, openai_api_key) VALUES ('p', 'p', 'k')"))
        connection.execute(
            sa.text("INSERT INTO tokens (token, project_id) VALUES (:t, 'p')"),
            [{"t": f"tok-{n}"} for n in range(tokens)],
        )
        connection.commit()
    events: list[ProgressEvent] = []
    log = io.StringIO()
    printer = _LogProgress(log)

    def both(event: ProgressEvent) -> None:
        events.append(event)
        printer(event)

    commands.upgrade(sqlite_settings, "0005", progress=both)
    rows = [e for e in events if e.kind == "backfill"]
    assert [e.done for e in rows] == [0, 20_000, 40_000, tokens] and {e.phase for e in rows} == {"copy tokens"}
    assert all(e.total == tokens for e in rows) and rows[-1].rate > 0 and rows[1].eta is not None
    lines = log.getvalue().splitlines()
    assert any("copy tokens 0/40,005 rows" in line for line in lines)
    assert any("copy tokens 40,005/40,005 rows (100%)" in line and "rows/s" in line for line in lines)
    with connect(sqlite_settings) as connection:
        assert connection.exec_driver_sql("SELECT count(DISTINCT id) FROM tokens").scalar() == tokens
