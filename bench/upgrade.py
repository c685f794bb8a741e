"""Cases 2 and 3: a big legacy database taken to head, against the hand-written SQL floor.

SQLite: the L1 file (and the L0 file without an audit log, to show what the audit log costs)
copied fresh for every run.  PostgreSQL: the goose-1 shape cloned from a template database
for every run, with a monitor that records how long any table was ACCESS EXCLUSIVE locked.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datagen
import floor
from measure import Run, Samples, run_process

from llm_proxy_db.dialects.sqlite.backup import copy_database

CHILD = str(Path(__file__).resolve().parent / "child.py")
TABLES = ("projects", "tokens", "audit_events")


@dataclass
class UpgradeResult:
    """Ours and the floor for one shape and size, plus per-revision times and lock times."""

    ours: Samples
    floor: Samples
    steps: dict[str, list[float]] = field(default_factory=dict)
    backup: Samples | None = None
    online_floor: Samples | None = None
    exclusive_lock_s: dict[str, float] = field(default_factory=dict)
    floor_exclusive_lock_s: dict[str, float] = field(default_factory=dict)

    def add_steps(self, steps: Mapping[str, float]) -> None:
        """Record one run's per-revision seconds."""
        for revision, seconds in steps.items():
            self.steps.setdefault(revision, []).append(seconds)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "ours": self.ours.as_dict(),
            "floor": self.floor.as_dict(),
            "ratio": self.ours.median / self.floor.median,
            "steps_s": self.steps,
            "backup": self.backup.as_dict() if self.backup else None,
            "online_floor": self.online_floor.as_dict() if self.online_floor else None,
            "online_ratio": self.ours.median / self.online_floor.median if self.online_floor else None,
            "exclusive_lock_s": self.exclusive_lock_s,
            "floor_exclusive_lock_s": self.floor_exclusive_lock_s,
        }


def adoption_env() -> dict[str, str]:
    """How the child reaches head from an unversioned database; see ``child.py``.

    Default: ``setup`` adopts it (the real path).  ``BENCH_ADOPT=stamp`` stamps the matching
    revision first instead (to time the revisions alone).
    """
    if os.environ.get("BENCH_ADOPT", "setup") == "setup":
        return {}
    return {"BENCH_STAMP": "0002"}


def sqlite_upgrades(cache: Path, work: Path, size: datagen.Size, *, rounds: int) -> dict[str, UpgradeResult]:
    """L1 and L0 files to head: ``setup`` (child process) and the ``sqlite3`` floor on fresh
    copies, all four interleaved round by round so noise hits them alike; the L1 round also
    times the tool's backup (the copy ``setup`` takes first)."""
    results = {
        "L1": UpgradeResult(Samples("ours"), Samples("floor"), backup=Samples("backup")),
        "L0": UpgradeResult(Samples("ours"), Samples("floor")),
    }
    for _ in range(rounds):
        for shape, result in results.items():
            _sqlite_round(cached_sqlite(cache, size, audit_log=shape == "L1"), work, result, shape)
    work.unlink(missing_ok=True)
    return results


def _sqlite_round(source: Path, work: Path, result: UpgradeResult, shape: str) -> None:
    adopt = adoption_env()
    if adopt and shape == "L0":
        adopt = {"BENCH_STAMP": "0001"}  # L0 is revision 0001's shape
    env = {**os.environ, "DB_DRIVER": "sqlite", "DATABASE_PATH": str(work), **adopt}
    _fresh_copy(source, work)
    run = run_process([sys.executable, CHILD, "setup"], env)
    result.ours.add(run)
    result.add_steps(_child_steps(run))
    _fresh_copy(source, work)
    script = floor.sqlite_script(audit_log=shape == "L1", schema_version=_schema_version(work))
    result.floor.add(run_process(["sqlite3", str(work)], stdin=script))
    if result.backup is not None:
        result.backup.add(_tool_backup(source, work))


def cached_sqlite(cache: Path, size: datagen.Size, *, audit_log: bool) -> Path:
    """The legacy file for ``size``, generated once and reused by later runs."""
    shape = "L1" if audit_log else "L0"
    path = cache / f"{shape}-{size.projects}-{size.tokens}-{size.events}.db"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        datagen.build_sqlite(partial, size, audit_log=audit_log)
        partial.rename(path)
    return path


def _fresh_copy(source: Path, work: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, work)


def _schema_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA schema_version").fetchone()[0])
    finally:
        connection.close()


def _tool_backup(source: Path, work: Path) -> Run:
    """The backup a migration takes first: the tool's checked copy (in this process)."""
    target = work.with_suffix(".backup")
    target.unlink(missing_ok=True)
    os.sync()  # not slowed by the dirty pages the upgrades left
    started = time.perf_counter()
    copy_database(source, target, revision="0002")
    run = Run(time.perf_counter() - started, 0.0)
    target.unlink()
    return run


def _child_steps(run: Run) -> dict[str, float]:
    import json

    return json.loads(run.stdout.strip().splitlines()[-1])["steps"]


def postgres_upgrade(admin_url: str, size: datagen.Size, *, rounds: int) -> UpgradeResult:
    """``setup`` vs the ``psql`` floors on clones of a goose-1 template, with lock monitoring.

    Two floors: the rewrite (one transaction, ``tokens`` rewritten under ACCESS EXCLUSIVE)
    and the online one (revision 0005's online steps typed by hand), interleaved round by
    round with ``setup``."""
    template = cached_postgres(admin_url, size)
    online = Samples("online floor")
    result = UpgradeResult(Samples("ours"), Samples("floor"), online_floor=online)
    for _ in range(rounds):
        with _clone(admin_url, template) as url:
            env = {**os.environ, "DB_DRIVER": "postgres", "DATABASE_URL": url, **adoption_env()}
            with LockMonitor(url) as monitor:
                run = run_process([sys.executable, CHILD, "setup"], env)
            result.ours.add(run)
            result.add_steps(_child_steps(run))
            _merge_max(result.exclusive_lock_s, monitor.longest)
        with _clone(admin_url, template) as url, LockMonitor(url) as monitor:
            result.floor.add(run_process(["psql", "-X", "-q", url], stdin=floor.POSTGRES_SCRIPT))
        _merge_max(result.floor_exclusive_lock_s, monitor.longest)
        with _clone(admin_url, template) as url:
            online.add(run_process(["psql", "-X", "-q", url], stdin=floor.POSTGRES_ONLINE_SCRIPT))
    return result


def cached_postgres(admin_url: str, size: datagen.Size) -> str:
    """A template database in the goose-1 shape with ``size`` rows, kept between runs."""
    name = f"llmproxy_bench_goose1_{size.projects}_{size.tokens}_{size.events}"
    if not _admin_scalar(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        partial = f"{name}_partial"
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{partial}"', f'CREATE DATABASE "{partial}"')
        datagen.build_postgres(_with_database(admin_url, partial), size)
        _admin(admin_url, f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
    return name


@contextmanager
def _clone(admin_url: str, template: str) -> Iterator[str]:
    name = f"llmproxy_bench_{uuid.uuid4().hex[:10]}"
    _create_from_template(admin_url, name, template)
    try:
        yield _with_database(admin_url, name)
    finally:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_from_template(admin_url: str, name: str, template: str, *, wait_s: float = 600.0) -> None:
    """``CREATE DATABASE ... TEMPLATE``, retried while another session (another benchmark
    cloning the same template) is connected to the template."""
    import psycopg

    deadline = time.monotonic() + wait_s
    while True:
        try:
            _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.5, 2.0))


def _admin(admin_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)  # type: ignore[arg-type]


def _admin_scalar(admin_url: str, query: str) -> object:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        row = connection.execute(query).fetchone()  # type: ignore[arg-type]
    return row[0] if row else None


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def _merge_max(into: dict[str, float], new: Mapping[str, float]) -> None:
    for table, seconds in new.items():
        into[table] = max(into.get(table, 0.0), seconds)


class LockMonitor:
    """Polls ``pg_locks`` every few ms; ``longest`` is the longest ACCESS EXCLUSIVE hold per table.

    A hold is seen from the first poll that shows it to the last one, so each figure is exact
    to within one polling interval (~2-5 ms plus the poll's own time).
    """

    QUERY = (
        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE l.mode = 'AccessExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid() "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND c.relname = ANY(%s)"
    )

    def __init__(self, url: str, interval: float = 0.002) -> None:
        self.url = url
        self.interval = interval
        self.longest: dict[str, float] = {}
        # Every hold seen: (table, first poll that saw it, last poll), perf_counter seconds.
        self.holds: list[tuple[str, float, float]] = []
        # Polls that saw sessions waiting for a lock: (perf_counter seconds, how many).
        self.lock_waits: list[tuple[float, int]] = []
        self._since: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> LockMonitor:
        import psycopg

        self._connection = psycopg.connect(self.url, autocommit=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()

    # Other sessions of this database waiting for a lock right now (the service's requests
    # queued behind the migration, or the migration behind them).
    WAITERS = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )

    def _poll(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            waiting = self._connection.execute(self.WAITERS).fetchone()
            if waiting and waiting[0]:
                self.lock_waits.append((now, int(waiting[0])))
            held = {row[0] for row in self._connection.execute(self.QUERY, (list(TABLES),))}
            for table in held:
                start = self._since.setdefault(table, now)
                self._seen[table] = now
                self.longest[table] = max(self.longest.get(table, 0.0), now - start)
            for table in set(self._since) - held:
                self.holds.append((table, self._since.pop(table), self._seen[table]))
            time.sleep(self.interval)
        self.holds.extend((table, start, self._seen[table]) for table, start in self._since.items())
