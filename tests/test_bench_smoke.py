"""The benchmark runs end to end at tiny sizes (speed claims live in bench/, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def test_bench_smoke_prints_and_saves_the_table(tmp_path: Path) -> None:
    """``bench/run.py --smoke`` builds its own databases, prints ratios and writes JSON."""
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--cases", "startup,upgrade,backup",
         "--out", str(tmp_path), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "migrate status --json" in out.stdout
    assert "sqlite L1" in out.stdout
    assert "backup: llm-proxy backup" in out.stdout
    (saved,) = tmp_path.glob("bench-*-smoke.json")
    results = json.loads(saved.read_text())
    assert {"machine", "startup", "upgrade", "backup", "targets"} <= results.keys()
    assert results["upgrade"]["sqlite_L1"]["ours"]["peak_rss_mib"] > 0
    assert all(step in results["upgrade"]["sqlite_L1"]["steps_s"] for step in ("0005", "0007"))
    assert any(row["target"].startswith("sqlite startup") for row in results["targets"])


@pytest.mark.postgresql
def test_live_traffic_smoke(tmp_path: Path, postgres_server_url) -> None:  # type: ignore[no-untyped-def]
    """The live case at tiny size on the test server: no failed request, the table printed."""
    if postgres_server_url is None:
        pytest.skip("no PostgreSQL server")
    url = postgres_server_url.render_as_string(hide_password=False).replace("+psycopg", "")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--cases", "live", "--postgres-url", url,
         "--out", str(tmp_path), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "live traffic (PostgreSQL)" in out.stdout
    (saved,) = tmp_path.glob("bench-*-smoke.json")
    (live,) = json.loads(saved.read_text())["live"].values()
    assert live["failed"] == 0 and live["during"]["n"] > 0, live


@pytest.mark.mysql
def test_mariadb_smoke(tmp_path: Path, mysql_server_url) -> None:  # type: ignore[no-untyped-def]
    """The MariaDB case at tiny size: setup and the mariadb-client floor reach the same schema,
    the token writes of the probe ran and none failed, the table is printed."""
    if mysql_server_url is None:
        pytest.skip("no MySQL server")
    url = mysql_server_url.render_as_string(hide_password=False).replace("+pymysql", "")
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--cases", "mariadb", "--mysql-url", url,
         "--out", str(tmp_path), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MariaDB goose-1 to head" in out.stdout
    (saved,) = tmp_path.glob("bench-*-smoke.json")
    (case,) = json.loads(saved.read_text())["mariadb"].values()
    assert case["same_schema_as_floor"] is True
    assert all(step in case["steps_s"] for step in ("0005", "0007"))
    for who in ("ours", "floor"):
        assert case["writes"][who]["write"]["n"] > 0 and case["writes"][who]["write"]["failed"] == 0, case["writes"]


def test_cli_latency_smoke(tmp_path: Path) -> None:
    """The ``cli`` case: every command at head and --help as whole processes, against 0.3 s."""
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--cases", "cli", "--postgres-url", "",
         "--out", str(tmp_path), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "sqlite cli: llm-proxy-db --help" in out.stdout
    (saved,) = tmp_path.glob("bench-*-smoke.json")
    results = json.loads(saved.read_text())
    commands = results["cli"]["sqlite"]["commands"]
    assert all(commands[name]["median_s"] > 0 for name in ("--version", "--help", "setup", "migrate up"))
    assert any(row["target"] == "sqlite cli: llm-proxy-db migrate up" and row["limit"] == 1.0
               for row in results["targets"])
