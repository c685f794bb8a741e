"""Plain ``alembic`` from the repository root, configured only by the service's variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def alembic(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DB_DRIVER", "DATABASE_PATH", "DATABASE_URL")}
    if settings.is_sqlite:
        env["DATABASE_PATH"] = str(settings.database_path)
    else:
        env["DB_DRIVER"] = settings.driver
        env["DATABASE_URL"] = settings.sqlalchemy_url().render_as_string(hide_password=False)
    command = [sys.executable, "-m", "alembic", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)


def test_upgrade_check_downgrade_from_the_repo_root(settings):
    outputs = {}
    for args in (["upgrade", "head"], ["check"], ["current"], ["downgrade", "base"]):
        done = alembic(settings, *args)
        assert done.returncode == 0, f"alembic {' '.join(args)}:\n{done.stderr}"
        outputs[args[0]] = done.stdout + done.stderr
    assert "No new upgrade operations detected" in outputs["check"]
    assert "0007 (head)" in outputs["current"]
    assert "Running downgrade 0001 -> " in outputs["downgrade"]


def test_read_only_alembic_commands_create_no_file(sqlite_settings):
    done = alembic(sqlite_settings, "current")
    assert done.returncode != 0
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert not sqlite_settings.database_path.parent.exists()
