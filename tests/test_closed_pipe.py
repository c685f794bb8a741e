"""Losing the reader of the output never stops or corrupts a migration (issue 21 item 7).

``llm-proxy-db setup 2>&1 | head -3`` used to exit 1 with the database left at 0002 (with
``head -20``, a partly applied 0005): the first write after ``head`` exited raised
``BrokenPipeError`` inside the progress callback, in the middle of the run.  Now writes to a
closed stdout/stderr are swallowed (the output stops), the migration finishes and the exit
code is the migration's.  Real processes, real pipes, SQLite and the server dialects.
"""

from __future__ import annotations

import os
import subprocess
import sys

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.migration import revisions
from tests.test_cli import db_options


def _spawn(settings: Settings, *args: str, stdout: int) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LLM_PROXY_", "DATABASE_", "DB_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "llm_proxy_db", *db_options(settings), *args],
        stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )


def _at_head(settings: Settings) -> bool:
    status = commands.status(settings)
    return status.current_revision == revisions.head_revision() and not status.partly_applied


def test_a_pipe_closed_before_any_output_does_not_stop_setup(settings: Settings) -> None:
    """The reader is gone before the first byte: every write fails, the migration does not."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = _spawn(settings, "setup", stdout=write_end)
    finally:
        os.close(write_end)
    assert process.wait(timeout=300) == 0
    assert _at_head(settings)


def test_a_pipe_closed_after_the_first_line_does_not_stop_setup(settings: Settings) -> None:
    """``setup 2>&1 | head -1``: the reader leaves after one line."""
    process = _spawn(settings, "setup", stdout=subprocess.PIPE)
    assert process.stdout is not None
    first = process.stdout.readline()
    process.stdout.close()
    assert process.wait(timeout=300) == 0, first
    assert first.strip(), "the first line came before the reader left"
    assert _at_head(settings)


def test_a_closed_pipe_keeps_a_failures_exit_code(sqlite_settings: Settings) -> None:
    """The exit code still reflects the command: a refusal is still exit 5 with no reader."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = _spawn(sqlite_settings, "migrate", "up", "--to", "9999", stdout=write_end)
    finally:
        os.close(write_end)
    assert process.wait(timeout=60) == 5


def test_a_closed_pipe_at_head_exits_zero(sqlite_settings: Settings) -> None:
    """The fast answer at head writes with no reader too: exit 0, no 'Exception ignored'."""
    commands.upgrade(sqlite_settings)
    for command in (["setup"], ["migrate", "status"], ["migrate", "history"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            process = _spawn(sqlite_settings, *command, stdout=write_end)
        finally:
            os.close(write_end)
        assert process.wait(timeout=60) == 0, command
