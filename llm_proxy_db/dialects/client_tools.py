"""Running a server's client tools (``pg_dump``, ``pg_restore``, ``mariadb-dump``, ``mariadb``).

What both server dialects need from a client tool: found on ``PATH`` or a clear
:class:`BackupError` (exit code 8) saying which tools to install; the password handed over
in the environment variable the tool reads (``PGPASSWORD``, ``MYSQL_PWD``), never on its
command line; files it writes created with umask 077 (a dump holds the projects' API keys);
a failure reported with the tool's last error line, the password masked, never a traceback.
A signal that ends this process (SIGINT, or SIGTERM, which the CLI turns into ``SystemExit``)
kills the running tool before the exception goes on: :func:`subprocess.run` does for
:func:`run_tool`, a ``finally`` does for :func:`stream_to_tool`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
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
    _check(completed.returncode, completed.stderr, password, what)
    return completed.stdout.decode(errors="replace")


def stream_to_tool(
    executable: str,
    args: Sequence[str],
    chunks: Iterable[bytes],
    *,
    password: tuple[str, str] | None,
    what: str,
) -> None:
    """Run ``executable`` with ``args``, its standard input fed from ``chunks`` (a dump
    rewritten on the fly); a failure as in :func:`run_tool`.  The tool is killed when this
    returns early (an exception, a signal)."""
    env = dict(os.environ)
    if password is not None:
        env[password[0]] = password[1]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [executable, *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
            env=env, umask=0o077,
        )
        try:
            with contextlib.suppress(BrokenPipeError), process.stdin or open(os.devnull, "wb") as feed:
                for chunk in chunks:  # a broken pipe: the tool stopped reading, its status says why
                    feed.write(chunk)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        errors.seek(0)
        _check(returncode, errors.read(), password, what)


def _check(returncode: int, stderr: bytes, password: tuple[str, str] | None, what: str) -> None:
    """BackupError with the tool's last error line when it failed."""
    if returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = _masked(lines[-1] if lines else f"exit status {returncode}", password)
        raise BackupError(
            f"{what} failed: {reason}",
            hint="the tool's own message is above; check the server, its privileges and the disk; "
            "no migration ran without its backup",
        )


def _masked(text: str, password: tuple[str, str] | None) -> str:
    """``text`` without the password, should a tool ever echo it."""
    if password is None or not password[1]:
        return text
    return text.replace(password[1], "***")
