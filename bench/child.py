"""Run in a child process by the benchmark (so its peak RSS is the tool's alone).

``python bench/child.py setup`` takes the database named by DB_DRIVER / DATABASE_PATH /
DATABASE_URL to head the way a deployment would and prints one JSON line: total seconds
and per-revision seconds.  An unversioned database is adopted by ``commands.setup``
(fingerprint, stamp, record, then the revisions).  With ``BENCH_ADOPT=stamp`` the
benchmark stamps the revision the legacy shape corresponds to instead (``BENCH_STAMP=0002``:
L1 and goose-1 are 0002, L0 is 0001) and ``setup`` upgrades from there.
``setup`` runs with ``no_backup=True``: the benchmark times the backup on its own.
"""

from __future__ import annotations

import json
import os
import time


def main() -> None:
    """Bring the database to head and report timings as JSON on stdout."""
    started = time.perf_counter()
    from llm_proxy_db import commands
    from llm_proxy_db.dialects.resolve import resolve_settings

    settings = resolve_settings()
    stamp = os.environ.get("BENCH_STAMP")
    if stamp:
        _stamp(settings, stamp)
    # The backup (VACUUM INTO) is measured separately by the benchmark.
    result = commands.setup(settings, no_backup=True, progress=_event_writer())
    steps = {step.revision: step.seconds for step in result.steps}
    print(json.dumps({"total": time.perf_counter() - started, "steps": steps}))


def _event_writer():  # type: ignore[no-untyped-def]
    """With ``BENCH_EVENTS=file``: each progress event as a JSON line with its wall-clock time."""
    path = os.environ.get("BENCH_EVENTS")
    if not path:
        return None
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process

    def write(event) -> None:  # type: ignore[no-untyped-def]
        out.write(json.dumps({"t": time.perf_counter(), "kind": event.kind, "revision": event.revision,
                              "detail": event.detail}) + "\n")

    return write


def _stamp(settings: object, revision: str) -> None:
    from alembic import command
    from llm_proxy_db.config.alembic_config import make_config
    from llm_proxy_db.database import connect

    with connect(settings, foreign_keys=False) as connection:  # type: ignore[arg-type]
        command.stamp(make_config(connection=connection), revision)
        connection.commit()


if __name__ == "__main__":
    main()
