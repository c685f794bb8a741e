"""The benchmark runs end to end at tiny sizes (speed claims live in bench/, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


def test_bench_smoke_prints_and_saves_the_table(tmp_path: Path) -> None:
    """``bench/run.py --smoke`` builds its own databases, prints ratios and writes JSON."""
    out = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--cases", "startup,upgrade",
         "--out", str(tmp_path), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "migrate status --json" in out.stdout
    assert "sqlite L1" in out.stdout
    (saved,) = tmp_path.glob("bench-*-smoke.json")
    results = json.loads(saved.read_text())
    assert {"machine", "startup", "upgrade", "targets"} <= results.keys()
    assert results["upgrade"]["sqlite_L1"]["ours"]["peak_rss_mib"] > 0
    assert all(step in results["upgrade"]["sqlite_L1"]["steps_s"] for step in ("0005", "0007"))
    assert any(row["target"].startswith("sqlite startup") for row in results["targets"])
