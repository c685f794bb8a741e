"""``stream_to_tool``: a client fed a rewritten dump through a pipe (real processes)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_proxy_db.dialects.client_tools import stream_to_tool
from llm_proxy_db.errors import BackupError
from llm_proxy_db.safety.server_backup import _way_back


def test_a_tool_that_stops_reading_is_reported_with_its_status() -> None:
    false = shutil.which("false") or "/bin/false"
    with pytest.raises(BackupError, match="loading x failed: exit status 1"):
        stream_to_tool(false, [], iter([b"x" * 65536] * 64), password=None, what="loading x")


def test_a_tool_gets_the_whole_stream() -> None:
    sh = shutil.which("sh") or "/bin/sh"
    stream_to_tool(sh, ["-c", "test \"$(wc -c)\" -eq 12 || exit 3"], iter([b"hello ", b"world!"]),
                   password=None, what="counting")
    with pytest.raises(BackupError, match="counting failed"):
        stream_to_tool(sh, ["-c", "test \"$(wc -c)\" -eq 13 || exit 3"], iter([b"hello ", b"world!"]),
                       password=None, what="counting")


def test_an_interruption_kills_the_tool(tmp_path: Path) -> None:
    sh, pid_file = shutil.which("sh") or "/bin/sh", tmp_path / "pid"

    def chunks() -> Iterator[bytes]:
        yield b"start"
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_bytes().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_to_tool(sh, ["-c", f"echo $$ > {pid_file}; exec sleep 60"], chunks(), password=None, what="x")
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left running
        os.kill(int(pid_file.read_text()), 0)


def test_an_interruption_without_a_safety_dump_says_so(tmp_path: Path) -> None:
    assert "held nothing before" in _way_back(tmp_path / "dump.sql", None, None, None)
