"""The deployment artefacts: the Dockerfile, the Kubernetes Job, the Helm hook, the init container.

No image can be built here, so the tests do what the image would do:

* every manifest is parsed with PyYAML (the Helm template after a minimal rendering of its
  ``{{ .Values... }}``) and its wiring checked: the command, the secret mounted as a file at the
  path ``DATABASE_URL_FILE`` names, a non-root user, no world-readable secret;
* the Dockerfile's own install steps (its ``RUN`` lines, read from the file) build the wheel and
  install it into fresh virtualenvs, one SQLite-only and one with the ``postgres`` extra; then the
  Job's exact command and environment run against a real SQLite file and the PostgreSQL server,
  the URL read from a file.

The install tests are marked ``install``: they build a wheel and download the dependencies
(about a minute; ``-m "not install"`` leaves them out).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES = ROOT / "deploy" / "kubernetes"
HELM = ROOT / "deploy" / "helm"
MIGRATE = ["llm-proxy-db", "migrate", "up"]
DRIVERS = {"psycopg", "psycopg-binary", "pymysql"}


# --- the manifests ---------------------------------------------------------------------------


def render_helm(template: str, values: dict[str, Any], release: str = "llm-proxy") -> str:
    """The subset of Helm's templating the hook uses: values, ``quote``, the release name and
    one ``if``; anything else fails the test rather than passing unrendered."""

    def value(path: str) -> Any:
        node: Any = values
        for key in path.split("."):
            node = node[key]
        return node

    enabled = re.fullmatch(r"\{\{- if \.Values\.([\w.]+) \}\}\n(.*)\{\{- end \}\}\n", template, re.S)
    assert enabled, "the hook is wrapped in one {{- if .Values... }} block"
    if not value(enabled.group(1)):
        return ""
    body = enabled.group(2).replace("{{ .Release.Name }}", release)
    body = re.sub(r"\{\{ \.Values\.([\w.]+) \| quote \}\}", lambda m: json.dumps(str(value(m.group(1)))), body)
    body = re.sub(r"\{\{ \.Values\.([\w.]+) \}\}", lambda m: str(value(m.group(1))), body)
    assert "{{" not in body, body
    return body


def helm_values() -> dict[str, Any]:
    return yaml.safe_load((HELM / "values.yaml").read_text(encoding="utf-8"))


def helm_job() -> dict[str, Any]:
    template = (HELM / "templates" / "llm-proxy-db-migrate.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(render_helm(template, helm_values()))


def kubernetes(name: str) -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / name).read_text(encoding="utf-8"))


def migrate_pods() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Every example that runs the migration: (pod spec, the migrating container)."""
    pods = {
        "job.yaml": kubernetes("job.yaml")["spec"]["template"]["spec"],
        "helm hook": helm_job()["spec"]["template"]["spec"],
        "init-container.yaml": kubernetes("init-container.yaml")["spec"]["template"]["spec"],
    }
    found = {}
    for name, pod in pods.items():
        containers = pod.get("initContainers", []) + pod["containers"]
        (migrate,) = [c for c in containers if c["name"] == "migrate"]
        found[name] = (pod, migrate)
    return found


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def secret_file(pod: dict[str, Any], container: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The path DATABASE_URL_FILE names and the secret volume that provides it."""
    path = env_of(container)["DATABASE_URL_FILE"]
    directory, _, filename = path.rpartition("/")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    assert mount.get("readOnly") is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (item,) = [i for i in volume["secret"]["items"] if i["path"] == filename]
    return path, {**volume["secret"], "key": item["key"]}


def dockerfile_user() -> int:
    (user,) = re.findall(r"^USER (\S+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    return int(user.split(":")[0])


def test_every_manifest_parses() -> None:
    """Each file under deploy/kubernetes is one Kubernetes object; the Helm hook renders to one."""
    files = sorted(KUBERNETES.glob("*.yaml"))
    assert {f.name for f in files} == {"job.yaml", "init-container.yaml", "secret.example.yaml"}
    for manifest in [*(kubernetes(f.name) for f in files), helm_job()]:
        assert {"apiVersion", "kind", "metadata"} <= manifest.keys()


@pytest.mark.parametrize("example", ["job.yaml", "helm hook", "init-container.yaml"])
def test_every_example_runs_migrate_up_with_the_url_from_a_mounted_secret(example: str) -> None:
    """The same command everywhere; the file DATABASE_URL_FILE names is the secret's key,
    mounted read-only, never world-readable; no plain DATABASE_URL beside it."""
    pod, container = migrate_pods()[example]
    assert container["command"] + container["args"] == MIGRATE
    env = env_of(container)
    assert "DATABASE_URL" not in env and env["DB_DRIVER"] == "postgres"
    _, secret = secret_file(pod, container)
    assert secret["defaultMode"] & 0o007 == 0, oct(secret["defaultMode"])
    assert secret["secretName"] == kubernetes("secret.example.yaml")["metadata"]["name"] or example == "helm hook"
    assert secret["key"] in kubernetes("secret.example.yaml")["stringData"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert security["runAsNonRoot"] is True and security["runAsUser"] == dockerfile_user() != 0
    assert security["allowPrivilegeEscalation"] is False


def test_the_job_and_the_helm_hook_run_once_and_stop() -> None:
    """A Job that never restarts in place; the hook runs before install and upgrade and is
    deleted once it succeeded (or before the next one is created)."""
    for job in (kubernetes("job.yaml"), helm_job()):
        assert job["kind"] == "Job" and job["apiVersion"] == "batch/v1"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    annotations = helm_job()["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}


def test_the_helm_values_reach_the_hook() -> None:
    """Image and secret come from values.yaml; disabling the hook renders nothing."""
    values = helm_values()
    pod, container = migrate_pods()["helm hook"]
    image = values["migration"]["image"]
    assert container["image"] == f"{image['repository']}:{image['tag']}"
    _, secret = secret_file(pod, container)
    assert (secret["secretName"], secret["key"]) == tuple(values["migration"]["databaseUrlSecret"].values())
    assert env_of(container)["LLM_PROXY_LOCK_TIMEOUT"] == values["migration"]["lockTimeout"]
    values["migration"]["enabled"] = False
    template = (HELM / "templates" / "llm-proxy-db-migrate.yaml").read_text(encoding="utf-8")
    assert render_helm(template, values).strip() == ""


def test_the_init_container_runs_before_the_service() -> None:
    """The service's container is left to the service; the migration is an init container."""
    pod = kubernetes("init-container.yaml")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["migrate"]
    assert all(c["name"] != "migrate" for c in pod["containers"])


def test_the_dockerfile_is_the_minimal_image_the_docs_describe() -> None:
    """Official slim Python base, the wheel in a virtualenv from the constraints, a non-root
    user, ``llm-proxy-db`` as entrypoint and ``setup`` by default."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_VERSION=3\.12$", text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:${PYTHON_VERSION}-slim"] * 2
    assert 'ENTRYPOINT ["llm-proxy-db"]' in text and 'CMD ["setup"]' in text
    assert dockerfile_user() != 0
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", "tests"} <= set(ignored)
    assert not {"llm_proxy_db", "alembic", "pyproject.toml", "README.md", "constraints.txt"} & set(ignored)


# --- the image's install steps, run here -----------------------------------------------------


def dockerfile_runs() -> tuple[str, list[str]]:
    """The wheel stage's ``RUN`` and the final stage's install steps, as shell commands."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    runs = re.findall(r"^RUN (.+)$", text, re.M)
    assert len(runs) == 2, runs
    steps = [step.strip() for step in runs[1].split("&&")]
    # The last steps add the system user: root's business on the image, not on this machine.
    installs = [step for step in steps if not step.startswith(("groupadd", "useradd"))]
    assert len(installs) == len(steps) - 2
    return runs[0], installs


def _shell(command: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Dockerfile's wheel stage: ``pip wheel --no-deps`` of the repository."""
    out = tmp_path_factory.mktemp("wheels")
    build, _ = dockerfile_runs()
    assert build.startswith("python -m pip wheel ") and build.endswith(" --wheel-dir /wheels .")
    _shell(build.replace("python", shlex.quote(sys.executable), 1)
           .replace("--wheel-dir /wheels .", f"--wheel-dir {out} {shlex.quote(str(ROOT))}"))
    return out


def install_like_the_image(wheels: Path, root: Path, extras: str) -> Path:
    """The final stage's install steps with its paths moved under ``root``; the venv's bin."""
    _, steps = dockerfile_runs()
    shutil.copytree(wheels, root / "wheels")
    shutil.copy(ROOT / "constraints.txt", root / "constraints.txt")
    venv = root / "opt" / "llm-proxy-db"
    script = " && ".join(steps)
    for image_path, here in (("/opt/llm-proxy-db", venv), ("/tmp/wheels", root / "wheels"),
                             ("/tmp/constraints.txt", root / "constraints.txt")):
        script = script.replace(image_path, shlex.quote(str(here)))
    assert script.startswith("python -m venv ")
    script = script.replace("python", shlex.quote(sys.executable), 1)
    # The one change: pip may use its cache here (the image installs with --no-cache-dir).
    script = script.replace(" --no-cache-dir", "")
    _shell(script, env={**_clean_env(), "EXTRAS": extras})
    assert not (root / "wheels").exists(), "the image's clean-up step ran"
    return venv / "bin"


@pytest.fixture(scope="module")
def sqlite_only(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image built with ``EXTRAS=`` (SQLite only): its venv's bin directory."""
    return install_like_the_image(wheels, tmp_path_factory.mktemp("image-sqlite"), "")


@pytest.fixture(scope="module")
def with_postgres(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image built with ``EXTRAS=postgres``: its venv's bin directory."""
    return install_like_the_image(wheels, tmp_path_factory.mktemp("image-postgres"), "postgres")


def _clean_env() -> dict[str, str]:
    """What a container has: no coverage hooks, no project paths, no database settings."""
    keep = ("HOME", "LANG", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT")
    return {"PATH": os.environ["PATH"], **{k: os.environ[k] for k in keep if k in os.environ}}


def job_environment(bin_dir: Path, secret: Path, **overrides: str) -> dict[str, str]:
    """The Job's container environment with the secret's mount path moved to ``secret``."""
    pod, container = migrate_pods()["job.yaml"]
    mounted, _ = secret_file(pod, container)
    env = {name: str(value) for name, value in env_of(container).items()}
    assert env["DATABASE_URL_FILE"] == mounted
    env["DATABASE_URL_FILE"] = str(secret)
    return {**_clean_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env, **overrides}


def run_job(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The Job's exact command (``command`` + ``args``), found on the image's PATH."""
    _, container = migrate_pods()["job.yaml"]
    return subprocess.run(container["command"] + container["args"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def write_secret(directory: Path, value: str) -> Path:
    """The URL as Kubernetes mounts it (0440 here too), with the line break ``echo`` leaves."""
    path = directory / "database-url"
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o440)
    return path


def distributions(bin_dir: Path) -> set[str]:
    code = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))"
    out = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True,
                         env=_clean_env()).stdout
    return {name.strip().lower() for name in out.split()}


def assert_fast_path(done: subprocess.CompletedProcess[str]) -> None:
    """At head the command answered without SQLAlchemy or Alembic (PYTHONPROFILEIMPORTTIME lists
    every module the process imported)."""
    assert done.returncode == 0, done.stderr
    assert "(nothing to do)" in done.stdout
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "llm_proxy_db" in imported, "the import profile was not captured"
    assert not {m for m in imported if m.split(".")[0] in ("sqlalchemy", "alembic", "typer")}


@pytest.mark.install
def test_a_sqlite_only_install_pulls_no_database_driver(sqlite_only: Path) -> None:
    """``pip install llm-proxy-db`` without extras: no psycopg, no PyMySQL."""
    installed = distributions(sqlite_only)
    assert {"llm-proxy-db", "alembic", "sqlalchemy", "typer"} <= installed
    assert not installed & DRIVERS, installed & DRIVERS
    version = subprocess.run([str(sqlite_only / "llm-proxy-db"), "--version"], capture_output=True, text=True,
                             env=_clean_env(), check=True).stdout
    from llm_proxy_db import __version__

    assert version == f"llm-proxy-db {__version__}\n"


@pytest.mark.install
def test_the_job_command_on_sqlite_from_the_sqlite_only_install(sqlite_only: Path, tmp_path: Path) -> None:
    """The Job's command on a SQLite file: migrates to head, then takes the fast path."""
    secret = write_secret(tmp_path, "unused for SQLite")
    env = job_environment(sqlite_only, secret, DB_DRIVER="sqlite", DATABASE_PATH=str(tmp_path / "data" / "x.db"))
    first = run_job(env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "base -> 0007" in first.stdout
    assert_fast_path(run_job({**env, "PYTHONPROFILEIMPORTTIME": "1"}, tmp_path))


@pytest.mark.install
@pytest.mark.parametrize(("driver", "url", "extra"), [
    ("postgres", "postgres://app:s3cret-pw@127.0.0.1:1/llm", "postgres"),
    ("mysql", "app:s3cret-pw@tcp(127.0.0.1:1)/llm", "mysql"),
])
def test_a_missing_driver_names_the_extra(sqlite_only: Path, tmp_path: Path, driver: str, url: str,
                                          extra: str) -> None:
    """Choosing a server without its driver installed: exit 2, the extra to install, no traceback,
    no password."""
    env = job_environment(sqlite_only, write_secret(tmp_path, url), DB_DRIVER=driver)
    for argv in (["migrate", "up"], ["migrate", "status"], ["migrate", "history"]):
        done = subprocess.run([str(sqlite_only / "llm-proxy-db"), *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert f"llm-proxy-db[{extra}]" in done.stderr and done.stderr.startswith("Error: ")
        assert "Traceback" not in done.stderr and "s3cret" not in done.stdout + done.stderr


@pytest.mark.install
@pytest.mark.postgresql
def test_the_job_command_on_postgresql_with_the_url_from_a_file(with_postgres: Path, postgres_url: Any,
                                                                 tmp_path: Path) -> None:
    """The Job as written: ``llm-proxy-db migrate up``, DB_DRIVER=postgres, DATABASE_URL_FILE;
    base to head, then at head on the fast path (no SQLAlchemy, no Alembic)."""
    assert {"psycopg", "psycopg-binary"} <= distributions(with_postgres)
    url = postgres_url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgres://")
    env = job_environment(with_postgres, write_secret(tmp_path, url))
    first = run_job(env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "base -> 0007" in first.stdout
    assert_fast_path(run_job({**env, "PYTHONPROFILEIMPORTTIME": "1"}, tmp_path))
    status = subprocess.run(["llm-proxy-db", "migrate", "status", "--json"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True)
    assert json.loads(status.stdout)["up_to_date"] is True
