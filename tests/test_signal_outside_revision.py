"""A signal that stops a command outside a revision (waiting for the lock, taking the backup,
a restore's load) still ends with one ``Error:`` line and a ``Hint:`` (exit 128 + the signal):
an operator reading a pod's log never meets a silent exit (issue 21, hostile review)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.safety import locking


@pytest.mark.parametrize(("sent", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_while_waiting_for_the_lock_says_interrupted(
    tmp_path: Path, sent: signal.Signals, code: int, name: str
) -> None:
    path = tmp_path / "llm-proxy.db"
    settings = Settings(driver="sqlite", database_path=path)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with connect(settings) as connection, locking.migration_lock(settings, connection):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        env = {**os.environ, "DATABASE_PATH": str(path), "DB_DRIVER": "sqlite", "LLM_PROXY_LOCK_TIMEOUT": "60"}
        env.pop("DATABASE_URL", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "llm_proxy_db", "setup", "--no-backup"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job ignores SIGINT
        )
        time.sleep(3)  # well inside the 60 s lock wait
        assert process.poll() is None
        process.send_signal(sent)
        _, err = process.communicate(timeout=30)
    finally:
        release.set()
        holder.join()
    assert process.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert sum(line.startswith("Error: ") for line in lines) == 1, err
    assert f"interrupted by {name}" in err and any(line.startswith("Hint: ") for line in lines), err
    assert "Traceback" not in err
