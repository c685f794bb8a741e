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
    assert "llm_proxy_db/_alembic/versions/manifest.sum" in names
    for dialect in ("sqlite", "postgresql", "mysql"):  # the committed known-state fingerprints
        assert f"llm_proxy_db/adoption/known_state_prints/{dialect}.json" in names


def test_wheel_installs_llm_proxy_db_and_the_llm_proxy_alias(wheel):
    """The console scripts: ``llm-proxy-db``, and ``llm-proxy`` kept as an alias."""
    archive = zipfile.ZipFile(wheel)
    entry_points = next(name for name in archive.namelist() if name.endswith("entry_points.txt"))
    text = archive.read(entry_points).decode()
    assert "llm-proxy-db = llm_proxy_db.cli.fast_path:main" in text
    assert "llm-proxy = llm_proxy_db.cli.fast_path:main" in text


def test_python_dash_m_runs_the_command_line(tmp_path):
    env = {**os.environ, "DATABASE_PATH": str(tmp_path / "x.db")}
    done = subprocess.run(
        [sys.executable, "-m", "llm_proxy_db", "migrate", "history", "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"id": "0001"' in done.stdout


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
        "from llm_proxy_db.cli.app import main; sys.argv = ['llm-proxy', 'setup']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert str(target) in done.stdout, "the installed copy, not the source tree, must run"
    assert "base -> 0007" in done.stdout
    assert (workdir / "db" / "llm-proxy.db").exists()


def test_installed_package_finds_and_verifies_its_manifest(wheel, tmp_path):
    """The startup checksum check and ``migrate verify`` need the manifest inside the wheel."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("COV_CORE_SOURCE", None)
    code = (
        "import sys; from llm_proxy_db.migration.manifest import manifest_head; print(manifest_head()); "
        "from llm_proxy_db.cli.app import main; sys.argv = ['llm-proxy', 'migrate', 'verify']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["0007", "OK the revision chain is sound"]
