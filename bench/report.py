"""The machine, the targets of issue 6 checked against a run's results, and the printed table."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from collections.abc import Iterator
from typing import Any

import cli_latency

Row = tuple[str, float, str, float, float | None, str]  # what, value, against, ratio, limit, unit


def machine() -> dict[str, object]:
    """What the run ran on (the ratios travel between machines, absolute times do not)."""
    memory = _first_line(["free", "-h"], line=1)
    return {
        "nproc": os.cpu_count(),
        "memory": " ".join(memory.split()[:2]) if memory else None,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "psql": _first_line(["psql", "--version"]),
        "platform": platform.platform(),
    }


def targets(results: dict[str, Any]) -> list[dict[str, object]]:
    """Every target of the issue that this run measured, with its figure and verdict."""
    return [
        {"target": what, "value": value, "ratio": ratio, "limit": limit,
         "met": None if limit is None else ratio <= limit, "against": against}
        for what, value, against, ratio, limit, _unit in _rows(results)
    ]


def table(results: dict[str, Any]) -> str:
    """The results as a fixed-width table: medians, what they are compared with, ratios."""
    lines = [f"{'measure':58} {'median':>10} {'ratio':>8} {'target':>8}  against"]
    lines.append("-" * 118)
    for what, value, against, ratio, limit, unit in _rows(results):
        verdict = "" if limit is None else ("ok" if ratio <= limit else "MISSED")
        target = "" if limit is None else f"<={limit:g}"
        lines.append(
            f"{what:58} {_fmt(value, unit):>10} {ratio:>7.2f}x {target:>8}  {against} {verdict}"
        )
    return "\n".join(lines)


def _rows(results: dict[str, Any]) -> Iterator[Row]:
    for dialect, case in results.get("startup", {}).items():
        yield from _startup_rows(dialect, case)
    for dialect, case in results.get("cli", {}).items():
        yield from cli_latency.rows(dialect, case)
    for key, limit in (("upgrade", True), ("growth", False)):
        if key in results:
            yield from _upgrade_rows(results[key], with_targets=limit)
    if "upgrade" in results and "growth" in results:
        yield from _growth_rows(results["upgrade"], results["growth"])
    for case in results.get("mariadb", {}).values():
        yield from _mariadb_rows(case, full=case["size"] == results["size"])
    if "backup" in results:
        yield from _backup_rows(results["backup"])


def _backup_rows(case: dict[str, Any]) -> Iterator[Row]:
    """Each SQLite backup method against ``cp`` of the quiescent file (issue 11: the tool's
    backup within 1.5x)."""
    medians = case["median_s"]
    cp = medians["cp (quiescent)"]
    for name, seconds in medians.items():
        if name != "cp (quiescent)":
            yield (f"sqlite {case['label']} backup: {name} ({case['size_mib']:.0f} MiB)", seconds,
                   f"cp {cp:.2f} s", seconds / cp, 1.5 if name == "llm-proxy backup" else None, "s")


def _startup_rows(dialect: str, case: dict[str, Any]) -> Iterator[Row]:
    whole = {name: data["median_s"] for name, data in case["whole_process"].items()}
    status, current = whole["llm-proxy-db migrate status --json"], whole["alembic current"]
    yield (f"{dialect} startup: migrate status --json", status,
           f"alembic current {current * 1000:.0f} ms", status / current, 0.35, "s")
    yield (f"{dialect} startup: migrate status --json vs client", status,
           f"client floor {whole['client floor'] * 1000:.0f} ms", status / whole["client floor"], None, "s")
    yield (f"{dialect} startup: setup at head", whole["llm-proxy-db setup"],
           f"alembic current {current * 1000:.0f} ms", whole["llm-proxy-db setup"] / current, None, "s")
    calls = {name: data["median_s"] for name, data in case["in_process"].items()}
    name = case["in_process_function"]
    bare = calls["bare connect-and-select"]
    yield (f"{dialect} in-process per call: {name}", calls[name],
           f"bare connect-and-select {bare * 1e6:.0f} us", calls[name] / bare, 2.0, "s")


def _upgrade_rows(case: dict[str, Any], *, with_targets: bool) -> Iterator[Row]:
    label = case["label"]
    l1, l0 = case["sqlite_L1"], case["sqlite_L0"]
    cap = (lambda limit: limit) if with_targets else (lambda limit: None)
    ours, floor = l1["ours"]["median_s"], l1["floor"]["median_s"]
    yield (f"sqlite L1 {label} -> head (setup)", ours, f"sqlite3 floor {floor:.2f} s", ours / floor,
           cap(1.1), "s")
    yield (f"sqlite L1 {label} peak RSS (MiB)", l1["ours"]["peak_rss_mib"], "100 MiB",
           l1["ours"]["peak_rss_mib"] / 100, cap(1.0), "MiB")
    yield (f"sqlite L0 {label} -> head (same tokens, no audit log)", l0["ours"]["median_s"],
           f"sqlite3 floor {l0['floor']['median_s']:.2f} s",
           l0["ours"]["median_s"] / l0["floor"]["median_s"], None, "s")
    yield (f"sqlite audit log cost: L1 / L0 {label}", ours, f"L0 {l0['ours']['median_s']:.2f} s",
           ours / l0["ours"]["median_s"], cap(1.2), "s")
    for revision, seconds in sorted(l1["steps_s"].items()):
        yield (f"  sqlite L1 {label} revision {revision}", _median(seconds), "total", _median(seconds) / ours,
               None, "s")
    if l1.get("backup"):
        backup = l1["backup"]["median_s"]
        yield (f"sqlite {label} backup (llm-proxy)", backup, f"upgrade {ours:.2f} s", backup / ours,
               cap(0.10), "s")
    if "postgresql_goose1" in case:
        yield from _postgres_rows(label, case["postgresql_goose1"], cap)


def _mariadb_rows(case: dict[str, Any], *, full: bool) -> Iterator[Row]:
    """The MariaDB case: the 1.1x target at full size, and no write to tokens waiting over 1 s."""
    label, ours, floor = case["label"], case["ours"]["median_s"], case["floor"]["median_s"]
    yield (f"mariadb goose-1 {label} -> head (setup)", ours, f"mariadb floor {floor:.2f} s",
           ours / floor, 1.1 if full else None, "s")
    for who in ("ours", "floor"):
        write = case["writes"][who]["write"]
        yield (f"mariadb {label} longest write to tokens ({who})", write["max_s"],
               f"1 s; p99 {write['p99_s'] * 1000:.0f} ms", write["max_s"], 1.0 if who == "ours" else None, "s")
    for revision, seconds in sorted(case["steps_s"].items()):
        yield (f"  mariadb {label} revision {revision}", _median(seconds), "total", _median(seconds) / ours,
               None, "s")


def _postgres_rows(label: str, pg: dict[str, Any], cap: Any) -> Iterator[Row]:
    ours, floor = pg["ours"]["median_s"], pg["floor"]["median_s"]
    yield (f"postgresql goose-1 {label} -> head (setup)", ours, f"psql floor {floor:.2f} s",
           ours / floor, cap(1.1), "s")
    if pg.get("online_floor"):
        online = pg["online_floor"]["median_s"]
        yield (f"postgresql goose-1 {label} -> head vs online floor", ours,
               f"psql online floor {online:.2f} s", ours / online, None, "s")
    yield (f"postgresql goose-1 {label} client peak RSS (MiB)", pg["ours"]["peak_rss_mib"], "100 MiB",
           pg["ours"]["peak_rss_mib"] / 100, cap(1.0), "MiB")
    for revision, seconds in sorted(pg["steps_s"].items()):
        yield (f"  postgresql {label} revision {revision}", _median(seconds), "total",
               _median(seconds) / ours, None, "s")
    for table, held in sorted(pg["exclusive_lock_s"].items()):
        floor_held = pg["floor_exclusive_lock_s"].get(table, 0.0)
        yield (f"postgresql {label} longest ACCESS EXCLUSIVE on {table}", held,
               f"psql floor {floor_held:.2f} s (one transaction)", held / max(ours, 1e-9),
               None, "s")


def _growth_rows(full: dict[str, Any], small: dict[str, Any]) -> Iterator[Row]:
    pairs = [("sqlite_L1", "sqlite L1"), ("sqlite_L0", "sqlite L0"), ("postgresql_goose1", "postgresql")]
    for key, name in pairs:
        if key in full and key in small:
            a, b = full[key]["ours"], small[key]["ours"]
            yield (f"growth {name} time {small['label']} -> {full['label']}", a["median_s"],
                   f"{b['median_s']:.2f} s", a["median_s"] / b["median_s"], None, "s")
            yield (f"growth {name} peak RSS {small['label']} -> {full['label']}", a["peak_rss_mib"],
                   f"{b['peak_rss_mib']:.0f} MiB", a["peak_rss_mib"] / b["peak_rss_mib"], 1.25, "MiB")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _fmt(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value * 1000:.2f} ms" if value < 0.01 else (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s")


def _first_line(argv: list[str], line: int = 0) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out[line].strip() if len(out) > line else None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
