"""A non-editable install (a built wheel) finds its migrations when run from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{done.stdout}\n{done.stderr}")
    return next(out.glob("llm_proxy_db-*.whl"))


def test_wheel_carries_the_migration_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "llm_proxy_db/_alembic/env.py" in names
    assert "llm_proxy_db/_alembic/versions/0001_initial_schema.py" in names
    assert "llm_proxy_db/_alembic/versions/0007_audit_outcome_values.py" in names


def test_installed_package_runs_setup_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "DATABASE_PATH": "db/llm-proxy.db"}
    env.pop("COV_CORE_SOURCE", None)
    code = (
        "import llm_proxy_db, sys; print(llm_proxy_db.__file__); "
        "from llm_proxy_db.cli import main; sys.argv = ['llm-proxy', 'setup']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout, "the installed copy, not the source tree, must run"
    assert "base -> 0007" in done.stdout
    assert (workdir / "db" / "llm-proxy.db").exists()
