"""One root error for everything a user can cause; each subclass carries its exit code.

The CLI turns any :class:`LLMProxyDBError` into one ``Error: ...`` line (plus an optional
hint) and its exit code.  Messages never contain passwords: build them from
:func:`llm_proxy_db.config.settings.Settings.display_url`, never from a raw URL.
"""

from __future__ import annotations

MISSING_BACKUP_HINT = (
    "check the path; `ls` the backup directory (--backup-dir, LLM_PROXY_BACKUP_DIR; beside the "
    "SQLite database by default) for the backups taken; the database was not touched"
)


class LLMProxyDBError(Exception):
    """Base class of every error meant for the user, never shown as a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def as_dict(self) -> dict[str, object]:
        """The error as ``--json`` prints it: message, hint, exit code, kind and its own data."""
        data: dict[str, object] = {
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
            "kind": type(self).__name__,
        }
        for key, value in vars(self).items():
            if key not in data and key not in ("args",) and not key.startswith("_"):
                data[key] = list(value) if isinstance(value, tuple) else value
        return data


class ConfigError(LLMProxyDBError, ValueError):
    """The configuration (driver, path, URL, option) is invalid."""

    exit_code = 2


class DatabaseConnectionError(LLMProxyDBError, ConnectionError):
    """The database cannot be opened or reached."""

    exit_code = 3


class ReadOnlyDatabaseError(DatabaseConnectionError):
    """The database only reads (a hot standby, a read-only session): point at the primary."""


class MigrationError(LLMProxyDBError, RuntimeError):
    """A revision failed; the database was rolled back to the last complete revision."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        failed_revision: str | None = None,
        current_revision: str | None = None,
        backup_file: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.failed_revision = failed_revision
        self.current_revision = current_revision
        self.backup_file = backup_file


class SchemaAppearedError(MigrationError):
    """Our tables appeared between "the database is empty" and the first revision (the
    service started meanwhile); nothing was changed, the caller detects again and adopts."""


class Interrupted(LLMProxyDBError):
    """A signal (SIGINT, SIGTERM) stopped a command outside a revision (a backup, a lock wait,
    a restore's load...); its cleanup ran first (exit 128 + the signal)."""

    def __init__(self, message: str, *, signal: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = 128 + signal


def signal_of(exc: BaseException) -> int | None:
    """The signal behind ``exc``: SIGINT for Ctrl-C's KeyboardInterrupt, N for the
    ``SystemExit(128 + N)`` the CLI's SIGTERM handler raises; None for anything else."""
    if isinstance(exc, KeyboardInterrupt):
        return 2
    if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code in (130, 143):
        return exc.code - 128
    return None


class MigrationInterrupted(MigrationError):
    """A signal stopped a revision; its transaction was rolled back (exit 128 + the signal)."""

    def __init__(self, message: str, *, signal: int, current_revision: str | None, hint: str | None = None) -> None:
        super().__init__(message, current_revision=current_revision, hint=hint)
        self.exit_code = 128 + signal


class UnknownRevisionError(LLMProxyDBError, LookupError):
    """A revision (requested, or recorded in the database) is not known to this code."""

    exit_code = 5


class SchemaMismatchError(LLMProxyDBError):
    """An unversioned database does not match any known schema state; nothing was changed."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        nearest_state: str | None = None,
        differences: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.nearest_state = nearest_state
        self.differences = differences


class LockTimeoutError(LLMProxyDBError, TimeoutError):
    """Another process held the migration lock for longer than the timeout."""

    exit_code = 7


class BackupError(LLMProxyDBError, OSError):
    """A backup could not be written, checked or restored."""

    exit_code = 8


class VerificationError(LLMProxyDBError):
    """The revision chain or its manifest failed verification."""

    exit_code = 9


class PendingMigrationsError(LLMProxyDBError):
    """The database is behind the code and automatic migration is switched off."""

    exit_code = 10


class DataLossError(LLMProxyDBError):
    """A downgrade would drop data; it runs only when data loss is explicitly allowed."""

    exit_code = 11

    def __init__(self, message: str, *, losses: tuple[object, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.losses = losses
