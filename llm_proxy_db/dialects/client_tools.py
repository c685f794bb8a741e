"""Running a server's client tools (``pg_dump``, ``pg_restore``, ``mariadb-dump``, ``mariadb``).

What both server dialects need from a client tool: found on ``PATH`` or a clear
:class:`BackupError` (exit code 8) saying which tools to install; the password handed over
in the environment variable the tool reads (``PGPASSWORD``, ``MYSQL_PWD``), never on its
command line; files it writes created with umask 077 (a dump holds the projects' API keys);
a failure reported with the tool's last error line, the password masked, never a traceback.
A signal that ends this process kills the running tool (:func:`subprocess.run` does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from llm_proxy_db.errors import BackupError


def find_tool(names: Sequence[str], hint: str) -> str:
    """The first of ``names`` on ``PATH``; BackupError when none is installed."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(f"{' / '.join(names)} {'is' if len(names) == 1 else 'are'} not installed", hint=hint)


def run_tool(
    executable: str,
    args: Sequence[str],
    *,
    password: tuple[str, str] | None,
    what: str,
    stdin: Path | None = None,
) -> str:
    """Run ``executable`` with ``args``; returns its standard output.

    ``password`` is ``(environment variable, value)``; ``what`` says what was attempted
    (``"pg_restore on postgresql://u:***@h/db"``) for the error message.
    """
    env = dict(os.environ)
    if password is not None:
        env[password[0]] = password[1]
    with open(stdin, "rb") if stdin is not None else open(os.devnull, "rb") as source:
        completed = subprocess.run(
            [executable, *args], stdin=source, env=env, capture_output=True, check=False, umask=0o077
        )
    if completed.returncode != 0:
        lines = completed.stderr.decode(errors="replace").strip().splitlines()
        reason = _masked(lines[-1] if lines else f"exit status {completed.returncode}", password)
        raise BackupError(f"{what} failed: {reason}")
    return completed.stdout.decode(errors="replace")


def _masked(text: str, password: tuple[str, str] | None) -> str:
    """``text`` without the password, should a tool ever echo it."""
    if password is None or not password[1]:
        return text
    return text.replace(password[1], "***")
