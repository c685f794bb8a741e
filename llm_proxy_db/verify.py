"""``migrate verify``: prove the revision chain is sound before it reaches a database.

Each check returns readable one-line problems (an empty list means it holds); nothing here
prints.  The checks, in order:

- the chain: exactly one base and one head, linear, readable ids (``0001``, ``0002``, ...)
  counting up by one and matching their file names (``0001_initial_schema.py``);
- every revision has a ``downgrade()`` that does something (read from the source's AST);
- the checksum manifest (:mod:`llm_proxy_db.migration.manifest`): released revisions unchanged, new
  ones only after the head, and listed; the committed known-state fingerprints
  (:mod:`llm_proxy_db.adoption.known_state_data`) derived from these revision files;
- on a scratch SQLite database (and a scratch PostgreSQL database when a server URL is
  given): base -> head -> base -> head, one revision at a time, then no autogenerate
  difference between the database and :func:`llm_proxy_db.schema.head.head_metadata`, and the
  fingerprint after each revision of the first pass equal to the committed known-state data
  of the server's family;
- offline SQL renders from base to head for both dialects.

The database and offline checks only run on a sound chain: with two heads there is no
single path to walk.
"""

from __future__ import annotations

import ast
import io
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from sqlalchemy.engine import URL, Connection

from alembic import command
from llm_proxy_db.adoption import known_state_data
from llm_proxy_db.config import paths
from llm_proxy_db.config.alembic_config import make_config
from llm_proxy_db.config.paths import manifest_path, script_location
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.database import connect
from llm_proxy_db.dialects import all_dialects, dialect_for, server_dialect_for
from llm_proxy_db.errors import LLMProxyDBError, VerificationError
from llm_proxy_db.migration import manifest
from llm_proxy_db.schema.drift import drift
from llm_proxy_db.schema.fingerprint import Fingerprint, fingerprint

READABLE_ID = re.compile(r"\d{4}")

Stage = Callable[[str], None]


def verify(
    settings: Settings | None = None,
    postgres_url: str | URL | None = None,
    *,
    mysql_url: str | URL | None = None,
    script_location: os.PathLike[str] | str | None = None,
    progress: Stage | None = None,
) -> list[str]:
    """Every problem with the revision chain, one line each; an empty list means it is sound.

    PostgreSQL is checked on a scratch database created on the server of ``postgres_url``
    (or of ``settings`` when those name PostgreSQL) and dropped afterwards; the database
    itself is never touched.  MySQL likewise on the server of ``mysql_url`` (or of ``settings``).
    """
    location = _location(script_location)
    report = progress or (lambda stage: None)
    report("revision chain")
    try:
        scripts = load_scripts(location)
    except VerificationError as exc:
        return [exc.message]
    chain_problems = check_chain(scripts)
    report("downgrades")
    problems = chain_problems + check_downgrades(scripts)
    report("manifest")
    problems += check_manifest(scripts, location)
    if chain_problems:
        return problems
    report("sqlite: base -> head -> base -> head")
    problems += check_scratch_sqlite(location)
    for server in _servers(settings, {"postgresql": postgres_url, "mysql": mysql_url}):
        report(f"{server.get_backend_name()}: base -> head -> base -> head")
        problems += check_scratch_server(server, location)
    report("offline SQL")
    return problems + check_offline(location)


def load_scripts(location: Path) -> ScriptDirectory:
    """Alembic's view of the scripts at ``location``; a script that cannot load is one error."""
    try:
        scripts = ScriptDirectory.from_config(make_config(script_location=location))
        scripts.revision_map.heads  # noqa: B018 - builds the map, raising on a broken chain
    except Exception as exc:  # noqa: BLE001 - any import or map error is a verify failure
        raise VerificationError(f"cannot load the revision scripts: {_first_line(exc)}") from None
    return scripts


def linear_chain(scripts: ScriptDirectory) -> list[Script]:
    """The revisions, oldest first (on a broken chain, Alembic's walk order)."""
    return list(reversed(list(scripts.walk_revisions("base", "heads"))))


def check_chain(scripts: ScriptDirectory) -> list[str]:
    """One head, one base, no branch or merge, readable ids that count up and match file names."""
    problems = [
        f"expected exactly one {kind}, found {len(found)}: {', '.join(sorted(found))}"
        for kind, found in (("head", scripts.get_heads()), ("base", scripts.get_bases()))
        if len(found) != 1
    ]
    for script in linear_chain(scripts):
        problems += _script_shape(script)
    return problems


def _script_shape(script: Script) -> list[str]:
    revision, name = script.revision, Path(script.path).name
    problems = []
    if isinstance(script.down_revision, (tuple, list)):
        problems.append(f"revision {revision} merges {', '.join(script.down_revision)}")
    if len(script.nextrev) > 1:
        children = ", ".join(sorted(script.nextrev))
        problems.append(f"revision {revision} has several children ({children}): a branch")
    if script.branch_labels or script.dependencies:
        problems.append(f"revision {revision} uses branch_labels or depends_on: keep one line")
    if not READABLE_ID.fullmatch(revision):
        problems.append(f"revision id {revision!r} ({name}) is not a readable id like 0008")
    elif not name.startswith(f"{revision}_"):
        problems.append(f"file {name} holds revision {revision}: name it {revision}_<slug>.py")
    down = script.down_revision
    if isinstance(down, str) and READABLE_ID.fullmatch(revision) and READABLE_ID.fullmatch(down):
        if int(revision) != int(down) + 1:
            problems.append(f"revision {revision} follows {down}: ids must count up by one")
    elif down is None and READABLE_ID.fullmatch(revision) and int(revision) != 1:
        problems.append(f"revision {revision} is a base: only 0001 may have no down_revision")
    return problems


def check_downgrades(scripts: ScriptDirectory) -> list[str]:
    """Every revision defines a ``downgrade()`` whose body does something."""
    problems = (_downgrade_problem(script) for script in linear_chain(scripts))
    return [line for line in problems if line]


def _downgrade_problem(script: Script) -> str | None:
    path = Path(script.path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    downgrade = next((node for node in functions if node.name == "downgrade"), None)
    where = f"revision {script.revision} ({path.name})"
    if downgrade is None:
        return f"{where} has no downgrade()"
    body = [node for node in downgrade.body if not _inert(node)]
    if not body:
        return f"{where}: downgrade() is a no-op (only pass, ... or a docstring)"
    if all(_raises_not_implemented(node) for node in body):
        return f"{where}: downgrade() only raises NotImplementedError"
    return None


def _inert(node: ast.stmt) -> bool:
    return isinstance(node, ast.Pass) or (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    )


def _raises_not_implemented(node: ast.stmt) -> bool:
    if not isinstance(node, ast.Raise) or node.exc is None:
        return False
    target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return isinstance(target, ast.Name) and target.id == "NotImplementedError"


def current_entries(scripts: ScriptDirectory) -> list[manifest.Entry]:
    """What the manifest should list for the scripts as they are now, oldest first."""
    return [manifest.entry_for(s.revision, Path(s.path)) for s in linear_chain(scripts)]


def check_manifest(scripts: ScriptDirectory, location: Path) -> list[str]:
    """Released revisions unchanged and first; new revisions after the head, and listed;
    the committed known-state fingerprints derived from these very revision files."""
    try:
        released = manifest.read_manifest(manifest_path(location))
    except VerificationError as exc:
        return [exc.message]
    problems = manifest.compare(released, current_entries(scripts))
    if _is_package_location(location):  # the data describes the package's own revisions
        problems += known_state_data.stale_files(location)
    return problems


def _is_package_location(location: Path) -> bool:
    """Whether ``location`` holds the package's own revisions (which the data describes)."""
    return location.resolve() == paths.script_location().resolve()


def manifest_problems(script_location: os.PathLike[str] | str | None = None) -> list[str]:
    """The manifest check alone (what ``llm-proxy migrate manifest`` reports)."""
    location = _location(script_location)
    try:
        scripts = load_scripts(location)
    except VerificationError as exc:
        return [exc.message]
    return check_manifest(scripts, location)


@dataclass(frozen=True)
class ManifestUpdate:
    """What ``migrate manifest --update`` did: the file, ids appended, entries rewritten."""

    path: Path
    added: list[str]
    rewritten: list[str]

    def describe(self) -> str:
        """One line for people."""
        parts = [f"added {', '.join(self.added)}"] if self.added else []
        parts += [f"rewrote {', '.join(self.rewritten)} (--force)"] if self.rewritten else []
        return f"{self.path}: {'; '.join(parts) or 'already up to date'}"


def update_manifest(
    script_location: os.PathLike[str] | str | None = None, *, force: bool = False
) -> ManifestUpdate:
    """Append the new revisions to the manifest.

    Refuses (:class:`VerificationError`) on a broken chain, and when a released entry would
    change, unless ``force`` (only for revisions never released anywhere).
    """
    location = _location(script_location)
    scripts = load_scripts(location)
    broken = check_chain(scripts)
    if broken:
        raise VerificationError(f"the chain is not sound: {broken[0]}", hint="fix it first")
    path = manifest_path(location)
    old = manifest.read_manifest(path) if path.exists() else manifest.Manifest()
    new = manifest.updated(old, current_entries(scripts), force=force)
    manifest.write_manifest(new, path)
    before = {entry.revision: entry for entry in old.entries}
    return ManifestUpdate(
        path=path,
        added=[rev for rev in new.ids if rev not in before],
        rewritten=[e.revision for e in new.entries if before.get(e.revision, e) != e],
    )


def check_scratch_sqlite(location: Path) -> list[str]:
    """Cycle the chain on a SQLite file in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="llm-proxy-verify-") as directory:
        settings = Settings(driver="sqlite", database_path=Path(directory) / "verify.db")
        return check_cycle(settings, location)


def check_scratch_server(server: URL, location: Path) -> list[str]:
    """Cycle the chain on a scratch database created on ``server`` and dropped (even if in use) after."""
    name = server.get_backend_name()
    try:
        with server_dialect_for(name).scratch_database(server, "verify") as settings:
            return check_cycle(settings, location)
    except LLMProxyDBError as exc:
        return [f"{name}: {exc.message}"]


def check_cycle(settings: Settings, location: Path) -> list[str]:
    """base -> head -> base -> head one revision at a time, then compare with the head metadata."""
    label = settings.dialect_name
    scripts = load_scripts(location)
    chain = linear_chain(scripts)
    steps = [("upgrade", s.revision, s.revision) for s in chain]
    steps += [("downgrade", s.revision, _down(s)) for s in reversed(chain)]
    steps += [("upgrade", s.revision, s.revision) for s in chain]
    prints: dict[str, Fingerprint] = {}
    with connect(settings, foreign_keys=False) as connection:
        for number, (verb, revision, target) in enumerate(steps, start=1):
            failure = _step(connection, location, verb, target)
            if failure:
                return [
                    f"{label}: {verb} of revision {revision} failed "
                    f"(step {number} of {len(steps)}, base -> head -> base -> head): {failure}"
                ]
            if number <= len(chain) and _is_package_location(location):  # base -> head, as derived
                prints[revision] = fingerprint(connection)
                connection.rollback()
        problems = _committed_states_differ(connection, prints) if prints else []
        return problems + [f"{label}: at head, {line}" for line in drift(connection)]


def _committed_states_differ(connection: Connection, prints: dict[str, Fingerprint]) -> list[str]:
    """The committed known-state fingerprints of this server family against what the
    revisions just produced (nothing to compare when the family has no usable entry)."""
    committed = known_state_data.load(connection)
    if committed is None:
        return []
    family = known_state_data.family_of(connection)
    return [
        f"{family}: committed known-state fingerprint of {line} (regenerate it with "
        f"`{known_state_data.UPDATE_COMMAND}`)"
        for line in known_state_data.differences(committed, prints)
    ]


def _step(connection: Connection, location: Path, verb: str, target: str) -> str | None:
    config = make_config(connection=connection, script_location=location)
    try:
        getattr(command, verb)(config, target)
        connection.commit()
    except Exception as exc:  # noqa: BLE001 - a failing revision is a verify failure
        connection.rollback()
        return exc.message if isinstance(exc, LLMProxyDBError) else _first_line(exc)
    return None


def check_offline(location: Path) -> list[str]:
    """``--sql`` renders from base to head for every dialect."""
    problems = []
    for dialect in all_dialects():
        settings = dialect.offline_settings()
        config = make_config(settings, script_location=location)
        config.output_buffer = io.StringIO()
        try:
            command.upgrade(config, "head", sql=True)
        except Exception as exc:  # noqa: BLE001 - a script that cannot render is a failure
            problems.append(f"{dialect.SQLALCHEMY_NAME}: offline SQL (--sql) does not render: {_first_line(exc)}")
    return problems


def _servers(settings: Settings | None, explicit: dict[str, str | URL | None]) -> list[URL]:
    """The server of each dialect to cycle on: the URL given for it, else that of ``settings``."""
    servers = []
    for name, given in explicit.items():
        if given is not None:
            text = given.render_as_string(hide_password=False) if isinstance(given, URL) else given
            servers.append(dialect_for(name).parse_database_url(text))
        elif settings is not None and settings.dialect_name == name:
            servers.append(settings.sqlalchemy_url())
    return servers


def _location(script_location_arg: os.PathLike[str] | str | None) -> Path:
    return Path(script_location_arg) if script_location_arg is not None else script_location()


def _down(script: Script) -> str:
    down = script.down_revision
    return down if isinstance(down, str) else "base"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
