"""Every ``LLM_PROXY_*`` setting parsed and validated in one place, up front.

A value is read once, at the start of a command, and refused there with an ``Error:`` that
names the variable (or option) and exit 2: a bad value must not lie dormant until something
is pending, and a safety switch must never fail open.

* Booleans accept ``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case, surrounding
  blanks ignored); an empty value means "unset"; anything else is refused.
* Numbers must be finite and in range: ``nan``, ``inf``, ``1e309``, ``-5``, ``abc`` never
  pass, nor ``0`` where zero makes no sense.

The module imports nothing heavy: the fast startup path validates with it too.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llm_proxy_db.config.secrets import check_secrets
from llm_proxy_db.errors import ConfigError

AUTO_MIGRATE_ENV = "LLM_PROXY_AUTO_MIGRATE"
STRICT_CHECKSUMS_ENV = "LLM_PROXY_STRICT_CHECKSUMS"
DEBUG_ENV = "LLM_PROXY_DEBUG"
LOCK_TIMEOUT_ENV = "LLM_PROXY_LOCK_TIMEOUT"
TABLE_LOCK_TIMEOUT_ENV = "LLM_PROXY_TABLE_LOCK_TIMEOUT"
KEEP_BACKUPS_ENV = "LLM_PROXY_KEEP_BACKUPS"
BACKUP_DIR_ENV = "LLM_PROXY_BACKUP_DIR"
LOCK_RETRIES_ENV = "LLM_PROXY_LOCK_RETRIES"
ALLOW_DATA_LOSS_ENV = "LLM_PROXY_ALLOW_DATA_LOSS"
LOG_FORMAT_ENV = "LLM_PROXY_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
MAX_REPLICA_LAG_ENV = "LLM_PROXY_MAX_REPLICA_LAG"
DIRECT_URL_ENV = "LLM_PROXY_DIRECT_URL"
GALERA_NODES_ENV = "LLM_PROXY_GALERA_NODES"
MYSQL_REPLICA_URLS_ENV = "LLM_PROXY_MYSQL_REPLICA_URLS"

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
BOOLEAN_SPELLINGS = "1/0, true/false, yes/no, on/off"

DEFAULT_LOCK_TIMEOUT = 300.0
MAX_LOCK_TIMEOUT = 7 * 24 * 3600.0  # a week: longer is a mistake, not a wait
DEFAULT_KEEP_BACKUPS = 5
MAX_KEEP_BACKUPS = 10_000
DEFAULT_LOCK_RETRIES = 5
MAX_LOCK_RETRIES = 100
DEFAULT_TABLE_LOCK_TIMEOUT = "1s"
DEFAULT_MAX_REPLICA_LAG = 1.0
MAX_MAX_REPLICA_LAG = 24 * 3600.0  # a day: a larger bound is no bound
# PostgreSQL's integer settings in milliseconds stop at INT_MAX.
MAX_TABLE_LOCK_TIMEOUT_MS = 2_147_483_647
_DURATION = re.compile(r"(?P<amount>\d+)\s*(?P<unit>ms|s|min)?")
_UNIT_MS = {None: 1, "ms": 1, "s": 1000, "min": 60_000}


def parse_bool(name: str, raw: str | None, default: bool) -> bool:
    """A boolean setting: one of the documented spellings, else a :class:`ConfigError`."""
    value = (raw or "").strip().lower()
    if not value:
        return default
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean", hint=f"{name} is a boolean: use one of {BOOLEAN_SPELLINGS}")


def lock_timeout_seconds(value: float | None = None, env: Mapping[str, str] | None = None) -> float:
    """The lock timeout in seconds: ``value``, else ``LLM_PROXY_LOCK_TIMEOUT``, else 300."""
    if value is not None:
        return parse_seconds("--lock-timeout", value)
    raw = (os.environ if env is None else env).get(LOCK_TIMEOUT_ENV, "")
    return parse_seconds(LOCK_TIMEOUT_ENV, raw) if raw.strip() else DEFAULT_LOCK_TIMEOUT


def parse_seconds(name: str, raw: str | float, *, maximum: float = MAX_LOCK_TIMEOUT) -> float:
    """A finite, non-negative number of seconds no larger than ``maximum``."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a number of seconds",
            hint=f"{name} is seconds from 0 to {maximum:g}, e.g. 300 or 2.5",
        ) from None
    if not math.isfinite(value) or not 0 <= value <= maximum:
        raise ConfigError(
            f"{name}={raw!r} is out of range",
            hint=f"{name} is a finite number of seconds from 0 to {maximum:g}",
        )
    return value


def parse_count(
    name: str, raw: str | int, *, minimum: int = 1, maximum: int = MAX_KEEP_BACKUPS, rule: str | None = None
) -> int:
    """A whole number from ``minimum`` to ``maximum``.

    Every refusal's hint states ``name``'s own rule (``rule``, else the range), never another
    setting's advice.
    """
    hint = f"{name} {rule or 'is'}: a whole number from {minimum} to {maximum}"
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number", hint=hint) from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw!r} is out of range ({minimum} to {maximum})", hint=hint)
    return value


KEEP_BACKUPS_RULE = "counts the automatic backups kept (use --no-backup to take none)"
LOCK_RETRIES_RULE = "counts the attempts of a statement that lost a lock race"


def parse_keep_backups(name: str, raw: str | int) -> int:
    """``--keep-backups`` / ``LLM_PROXY_KEEP_BACKUPS``: 1 to 10000 automatic backups kept."""
    return parse_count(name, raw, rule=KEEP_BACKUPS_RULE)


def parse_pg_duration(name: str, raw: str) -> str:
    """A PostgreSQL duration (``500ms``, ``5s``, ``1min``, plain milliseconds) within INT_MAX ms."""
    value = raw.strip()
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"{name}={raw!r} is not a duration", hint=f"{name} is a duration: milliseconds or a unit, 500ms, 5s, 1min"
        )
    millis = int(match.group("amount")) * _UNIT_MS[match.group("unit")]
    if millis > MAX_TABLE_LOCK_TIMEOUT_MS:
        raise ConfigError(
            f"{name}={raw!r} is out of range",
            hint=f"{name} is a duration of at most {MAX_TABLE_LOCK_TIMEOUT_MS} ms (about 24 days: PostgreSQL's "
            "limit); 0 waits forever",
        )
    return value


def pg_duration_ms(value: str) -> int:
    """Milliseconds of a duration already accepted by :func:`parse_pg_duration`."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return int(match.group("amount")) * _UNIT_MS[match.group("unit")]


@dataclass(frozen=True)
class EnvSettings:
    """The ``LLM_PROXY_*`` variables, parsed and validated."""

    auto_migrate: bool = True
    strict_checksums: bool = False
    debug: bool = False
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    table_lock_timeout: str = DEFAULT_TABLE_LOCK_TIMEOUT
    keep_backups: int = DEFAULT_KEEP_BACKUPS
    backup_dir: Path | None = None
    lock_retries: int = DEFAULT_LOCK_RETRIES
    allow_data_loss: bool = False  # plain ``alembic downgrade`` only (see llm_proxy_db.cli.alembic_env)
    log_format: str = "text"
    max_replica_lag: float = DEFAULT_MAX_REPLICA_LAG
    galera_nodes: tuple[str, ...] = ()
    mysql_replica_urls: tuple[str, ...] = ()


def env_settings(env: Mapping[str, str] | None = None) -> EnvSettings:
    """Parse every ``LLM_PROXY_*`` variable; the first bad one raises :class:`ConfigError`.

    A secret given both as ``NAME`` and ``NAME_FILE`` is refused here too (:mod:`secrets`)."""
    env = os.environ if env is None else env
    check_secrets(env)

    def given(name: str) -> str | None:
        value = env.get(name)
        return value if value and value.strip() else None

    lock, table_lock, keep, backup_dir, retries = (
        given(n)
        for n in (LOCK_TIMEOUT_ENV, TABLE_LOCK_TIMEOUT_ENV, KEEP_BACKUPS_ENV, BACKUP_DIR_ENV, LOCK_RETRIES_ENV)
    )
    return EnvSettings(
        auto_migrate=parse_bool(AUTO_MIGRATE_ENV, env.get(AUTO_MIGRATE_ENV), True),
        strict_checksums=parse_bool(STRICT_CHECKSUMS_ENV, env.get(STRICT_CHECKSUMS_ENV), False),
        debug=parse_bool(DEBUG_ENV, env.get(DEBUG_ENV), False),
        lock_timeout=parse_seconds(LOCK_TIMEOUT_ENV, lock) if lock else DEFAULT_LOCK_TIMEOUT,
        table_lock_timeout=parse_pg_duration(TABLE_LOCK_TIMEOUT_ENV, table_lock)
        if table_lock
        else DEFAULT_TABLE_LOCK_TIMEOUT,
        keep_backups=parse_keep_backups(KEEP_BACKUPS_ENV, keep) if keep else DEFAULT_KEEP_BACKUPS,
        backup_dir=Path(backup_dir).expanduser() if backup_dir else None,
        lock_retries=parse_lock_retries(retries),
        allow_data_loss=parse_bool(ALLOW_DATA_LOSS_ENV, env.get(ALLOW_DATA_LOSS_ENV), False),
        log_format=parse_log_format(env.get(LOG_FORMAT_ENV)),
        max_replica_lag=parse_max_replica_lag(env.get(MAX_REPLICA_LAG_ENV)),
        galera_nodes=parse_addresses(GALERA_NODES_ENV, env.get(GALERA_NODES_ENV), urls=False),
        mysql_replica_urls=parse_addresses(MYSQL_REPLICA_URLS_ENV, env.get(MYSQL_REPLICA_URLS_ENV), urls=True),
    )


def parse_log_format(raw: str | None) -> str:
    """``LLM_PROXY_LOG_FORMAT``: ``text`` (default) or ``json`` (one JSON object per line on stderr)."""
    value = (raw or "").strip().lower()
    if not value:
        return "text"
    if value not in LOG_FORMATS:
        raise ConfigError(f"{LOG_FORMAT_ENV}={raw!r} is not a log format", hint="use text or json")
    return value


def log_format(env: Mapping[str, str] | None = None) -> str:
    """The log format for the error boundary, which must not fail itself: a bad value means text."""
    try:
        return parse_log_format((os.environ if env is None else env).get(LOG_FORMAT_ENV))
    except ConfigError:
        return "text"


def parse_lock_retries(raw: str | None) -> int:
    """``LLM_PROXY_LOCK_RETRIES``: attempts per statement that lost a lock race (1 to 100, default 5)."""
    if raw is None or not raw.strip():
        return DEFAULT_LOCK_RETRIES
    return parse_count(LOCK_RETRIES_ENV, raw, maximum=MAX_LOCK_RETRIES, rule=LOCK_RETRIES_RULE)


def parse_max_replica_lag(raw: str | None) -> float:
    """``LLM_PROXY_MAX_REPLICA_LAG``: seconds a streaming replica may fall behind before a
    batched phase pauses (default 1; ``0`` switches the throttle off)."""
    if raw is None or not raw.strip():
        return DEFAULT_MAX_REPLICA_LAG
    return parse_seconds(MAX_REPLICA_LAG_ENV, raw, maximum=MAX_MAX_REPLICA_LAG)


_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})")


def parse_addresses(name: str, raw: str | None, *, urls: bool) -> tuple[str, ...]:
    """A comma-separated list of ``host:port`` (and, with ``urls``, ``mysql://`` / ``mariadb://``
    URLs): the MySQL servers of a topology named by hand.  Empty: none."""
    entries = tuple(part.strip() for part in (raw or "").split(",") if part.strip())
    for entry in entries:
        if urls and entry.split("://", 1)[0] in ("mysql", "mariadb") and "://" in entry:
            continue
        match = _HOST_PORT.fullmatch(entry)
        if match is None or not 0 < int(match.group("port")) < 65536:
            masked = entry.split("@")[-1]
            raise ConfigError(
                f"{name} has {masked!r}, which is not host:port" + (" or a mysql:// URL" if urls else ""),
                hint="a comma-separated list such as 10.0.0.1:3306,10.0.0.2:3306",
            )
    return entries


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``LLM_PROXY_DEBUG`` for the error boundary, which must not fail itself: bad means off."""
    try:
        return parse_bool(DEBUG_ENV, (os.environ if env is None else env).get(DEBUG_ENV), False)
    except ConfigError:
        return False
