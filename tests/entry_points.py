"""The two ways an operator migrates: ``llm-proxy-db migrate`` and plain ``alembic`` from the
repository root.  Safety tests take ``entry`` as a parameter and expect the same behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from llm_proxy_db.config.settings import Settings

REPO = Path(__file__).resolve().parent.parent
ENTRY_POINTS = ["cli", "alembic"]


@dataclass
class Outcome:
    """Exit code and everything printed (stdout and stderr together)."""

    exit_code: int
    output: str


def alembic(settings: Settings, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m alembic ARGS`` from the repository root, configured only by the service's variables."""
    ours = ("DB_DRIVER", "DATABASE_PATH", "DATABASE_URL")
    full = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("LLM_PROXY_")}
    if settings.is_sqlite:
        full["DATABASE_PATH"] = str(settings.database_path)
    else:
        full["DB_DRIVER"] = settings.driver
        full["DATABASE_URL"] = settings.sqlalchemy_url().render_as_string(hide_password=False)
    full.update(env or {})
    command = [sys.executable, "-m", "alembic", *args]
    return subprocess.run(command, cwd=REPO, env=full, capture_output=True, text=True, timeout=300)


def migrate(
    settings: Settings,
    entry: str,
    verb: str,
    target: str,
    *,
    allow_data_loss: bool = False,
    no_backup: bool = False,
    backup_dir: Path | None = None,
    lock_timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """``verb`` (``up`` or ``down``) to ``target`` (a revision, ``base``, ``head`` or ``-N``) via ``entry``."""
    if entry == "cli":
        from tests.test_cli_safety import cli

        args = ["migrate", verb, *(["--steps", target[1:]] if target.startswith("-") else ["--to", target])]
        args += ["--allow-data-loss"] if allow_data_loss else []
        args += ["--no-backup"] if no_backup else []
        args += ["--backup-dir", str(backup_dir)] if backup_dir else []
        args += ["--lock-timeout", str(lock_timeout)] if lock_timeout is not None else []
        result = cli(settings, *args, env=env)
        return Outcome(result.exit_code, result.output)
    x = ["-x", "allow-data-loss=true"] if allow_data_loss else []
    x += ["-x", "no-backup=true"] if no_backup else []
    x += ["-x", f"backup-dir={backup_dir}"] if backup_dir else []
    x += ["-x", f"lock-timeout={lock_timeout}"] if lock_timeout is not None else []
    done = alembic(settings, *x, {"up": "upgrade", "down": "downgrade"}[verb], target, env=env)
    return Outcome(done.returncode, done.stdout + done.stderr)
