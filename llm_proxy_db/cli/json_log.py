"""JSON-lines logs (``LLM_PROXY_LOG_FORMAT=json``): one JSON object per line on stderr.

A renderer of the same :class:`~llm_proxy_db.migration.executor.ProgressEvent` values the text
renderers of :mod:`llm_proxy_db.cli.render` show, for log shippers: every progress event and
every message (warnings, errors, ``migrate verify``'s stages) is one object with the keys
``time``, ``level``, ``event``, ``phase``, ``revision``, ``direction``, ``rows``, ``total``,
``rate``, ``elapsed``, ``message`` and ``detail`` (errors add ``hint`` and ``exit_code``).
The schema is ``llm_proxy_db/cli/schemas/log-line.schema.json``.  Text stays the default.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from llm_proxy_db.cli.render import describe_event, progress_printer, stage_printer
from llm_proxy_db.config.parsing import log_format

if TYPE_CHECKING:
    from llm_proxy_db.events import Progress, ProgressEvent

# The coarse phase of each event kind; an unknown kind is its own phase.
_PHASES = {
    "lock_wait": "lock",
    "lock_acquired": "lock",
    "backup_done": "backup",
    "apply_start": "apply",
    "apply_success": "apply",
    "apply_failure": "apply",
    "adopted": "adopt",
    "lock_retry": "retry",
}
_WARNINGS = frozenset({"lock_wait", "lock_retry"})
_ERRORS = frozenset({"apply_failure"})


def json_logs() -> bool:
    """Whether ``LLM_PROXY_LOG_FORMAT`` asks for JSON lines (validated at every command's start)."""
    return log_format() == "json"


def progress(stream: TextIO | None = None) -> Progress:
    """The progress callback for this run: JSON lines, or the text renderer (terminal or log)."""
    if json_logs():
        return JsonLinesProgress(stream)
    return progress_printer(stream)


def stages(stream: TextIO | None = None) -> Callable[[str], None]:
    """The callback for ``migrate verify``'s stages: JSON lines, or ``checking ...`` lines."""
    if json_logs():
        return lambda stage: log_message("info", f"checking {stage} ...", stream, event="stage", phase="verify")
    return stage_printer(stream)


def log_message(level: str, message: str, stream: TextIO | None = None, **extra: Any) -> None:
    """One message as a JSON line: ``level`` is ``info``, ``warning`` or ``error``."""
    _write(stream, _record(level, extra.pop("event", "message"), message) | extra)


class JsonLinesProgress:
    """Progress events as JSON lines; a long backfill or rebuild is reported every few seconds."""

    EVERY = 5.0  # seconds between two lines of the same running count

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._last_count = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if 0 < event.done < event.total:
            if time.monotonic() - self._last_count < self.EVERY:
                return
            self._last_count = time.monotonic()
        _write(self.stream, event_record(event))


def event_record(event: ProgressEvent) -> dict[str, Any]:
    """The JSON object of one progress event."""
    level = "error" if event.kind in _ERRORS else "warning" if event.kind in _WARNINGS else "info"
    record = _record(level, event.kind, describe_event(event))
    record.update(
        phase=_PHASES.get(event.kind, event.kind),
        revision=event.revision or None,
        direction=event.direction or None,
        rows=event.done if event.total else None,
        total=event.total or None,
        rate=round(event.done / event.elapsed, 1) if event.total and event.elapsed > 0 else None,
        elapsed=round(event.elapsed, 3),
        detail=event.detail or None,
    )
    return record


class JsonLogFormatter(logging.Formatter):
    """Python log records (Alembic's ``Running upgrade ...``) as the same JSON lines."""

    _LEVELS = {"DEBUG": "info", "INFO": "info", "WARNING": "warning"}

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object: the record's message, its logger as ``detail``."""
        level = self._LEVELS.get(record.levelname, "error")
        return json.dumps(_record(level, "message", record.getMessage()) | {"detail": record.name})


def json_python_logging() -> None:
    """Make the root logger's handlers (set up from ``alembic.ini``) write JSON lines."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonLogFormatter())


def _record(level: str, event: str, message: str) -> dict[str, Any]:
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": level,
        "event": event,
        "phase": None,
        "revision": None,
        "direction": None,
        "rows": None,
        "total": None,
        "rate": None,
        "elapsed": None,
        "message": message,
        "detail": None,
    }


def _write(stream: TextIO | None, record: dict[str, Any]) -> None:
    out = stream or sys.stderr
    out.write(json.dumps(record, default=str) + "\n")
    out.flush()
