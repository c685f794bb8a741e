"""Plain ``alembic upgrade/downgrade/stamp`` as safe as ``llm-proxy-db migrate``.

``alembic/env.py`` calls :func:`run_alembic`.  When Alembic itself was asked to change the
schema (the ``alembic`` command, or ``command.upgrade(Config("alembic.ini"), ...)`` in a
script), the run goes through the library's guarded verbs (:func:`llm_proxy_db.commands.upgrade`,
``downgrade``, ``stamp``): the migration lock, the re-read under it, the refusal of a revision
written by a newer release, the data-loss refusal, the backup, one transaction per revision and
the run-log row, exactly as for the CLI.  Everything else runs the revisions directly
(:func:`llm_proxy_db.migration.environment.run_environment`): ``--sql`` (offline), read-only
commands (``current``, ``check``), and configs built by :func:`~llm_proxy_db.config.alembic_config.make_config`,
whose callers (our executor, adoption, tests) hold the guard already.

The safety switches are Alembic's ``-x`` arguments: ``-x allow-data-loss=true`` (or
``LLM_PROXY_ALLOW_DATA_LOSS=1``), ``-x no-backup=true``, ``-x backup-dir=PATH``,
``-x keep-backups=N``, ``-x lock-timeout=SECONDS``.  Errors are the CLI's: one ``Error:``
line, a ``Hint:`` and the documented exit code.
"""

from __future__ import annotations

import sys
from typing import Any

from llm_proxy_db import commands, failures
from llm_proxy_db.cli.json_log import json_logs, json_python_logging, log_message, progress
from llm_proxy_db.config.alembic_config import CALLER_GUARDS
from llm_proxy_db.config.parsing import env_settings, parse_bool, parse_keep_backups, parse_seconds
from llm_proxy_db.dialects.resolve import resolve_settings
from llm_proxy_db.errors import ConfigError, DataLossError, LLMProxyDBError
from llm_proxy_db.migration import revisions
from llm_proxy_db.migration.environment import configure_logging, run_environment

GUARDED_VERBS = {"upgrade": "upgrade", "downgrade": "downgrade", "stamp": "stamp", "do_stamp": "stamp"}
X_FLAGS = ("allow-data-loss", "no-backup")
X_VALUES = ("backup-dir", "keep-backups", "lock-timeout")
ALLOW_HINT = (
    "export what you need first, then run again with `alembic -x allow-data-loss=true downgrade ...` "
    "(or LLM_PROXY_ALLOW_DATA_LOSS=1); a backup is taken first unless -x no-backup=true"
)


def run_alembic(context: Any) -> None:
    """What ``alembic/env.py`` runs: a guarded verb, or the revisions directly."""
    config = context.config
    verb = guarded_verb(context)
    if verb is None:
        run_environment(context)
        return
    configure_logging(config)
    if json_logs():
        json_python_logging()
    outer = getattr(context, "_proxy", None)
    try:
        _run_guarded(context, verb)
    except Exception as exc:
        error = exc if isinstance(exc, LLMProxyDBError) else failures.translate(exc)
        if error is None or getattr(config, "cmd_opts", None) is None:
            raise
        _exit_like_the_cli(error)
    finally:
        if outer is not None and getattr(context, "_proxy", None) is None:
            outer._install_proxy()  # the nested per-revision commands removed Alembic's proxy


def guarded_verb(context: Any) -> str | None:
    """``upgrade``, ``downgrade`` or ``stamp`` when this run must be guarded here, else None."""
    config = context.config
    if context.is_offline_mode() or config.attributes.get(CALLER_GUARDS):
        return None
    command = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    if command:
        name = getattr(command[0], "__name__", "")
    else:  # called through alembic.command by a script: the function Alembic will run
        opts = getattr(getattr(context, "_proxy", None), "context_opts", {})
        name = getattr(opts.get("fn"), "__name__", "")
    return GUARDED_VERBS.get(name)


def x_options(arguments: dict[str, str]) -> dict[str, Any]:
    """The ``-x`` safety switches as keyword arguments for the library; anything else is refused."""
    unknown = sorted(set(arguments) - set(X_FLAGS) - set(X_VALUES))
    if unknown:
        raise ConfigError(
            f"unknown -x argument(s): {', '.join(unknown)}",
            hint=f"known: {', '.join(f'{name}=true' for name in X_FLAGS)}, "
            f"{', '.join(f'{name}=...' for name in X_VALUES)}",
        )

    def flag(name: str) -> bool:
        raw = arguments.get(name)
        return raw is not None and parse_bool(f"-x {name}", raw or "true", False)

    options: dict[str, Any] = {"no_backup": flag("no-backup")}
    if arguments.get("backup-dir"):
        if options["no_backup"]:
            raise ConfigError("-x no-backup and -x backup-dir contradict each other", hint="give only one of them")
        options["backup_dir"] = arguments["backup-dir"]
    if arguments.get("keep-backups"):
        options["keep_backups"] = parse_keep_backups("-x keep-backups", arguments["keep-backups"])
    if arguments.get("lock-timeout"):
        options["lock_timeout"] = parse_seconds("-x lock-timeout", arguments["lock-timeout"])
    options["allow_data_loss"] = flag("allow-data-loss") or env_settings().allow_data_loss
    return options


def _run_guarded(context: Any, verb: str) -> None:
    options = x_options(context.get_x_argument(as_dictionary=True))
    allow_data_loss = options.pop("allow_data_loss")
    settings = context.config.attributes.get("settings") or resolve_settings()
    spec = _destination(context)
    report = progress()
    if verb == "stamp":
        commands.stamp(settings, spec, progress=report, **options)
    elif verb == "upgrade":
        commands.upgrade(settings, _absolute(spec, settings), progress=report, **options)
    else:
        steps = _steps_down(spec)
        target = None if steps is not None else _absolute(spec, settings)
        try:
            commands.downgrade(
                settings, target, steps=steps, progress=report, allow_data_loss=allow_data_loss, **options
            )
        except DataLossError as exc:
            exc.hint = ALLOW_HINT
            raise


def _destination(context: Any) -> str:
    """The revision Alembic was given (``head``, ``base``, an id, ``-1``, ``head-2``, ``0003+1``)."""
    opts = getattr(getattr(context, "_proxy", None), "context_opts", {})
    raw = opts.get("destination_rev")
    if isinstance(raw, (list, tuple)):
        raw = raw[0] if len(raw) == 1 else None
    if not raw:
        raise ConfigError("give one revision: the chain has a single head", hint="e.g. alembic upgrade head")
    return "head" if raw == "heads" else str(raw)


def _steps_down(spec: str) -> int | None:
    """``-N`` counts from the revision read under the lock; anything else is a fixed target."""
    return int(spec[1:]) if spec.startswith("-") and spec[1:].isdigit() else None


def _absolute(spec: str, settings: Any) -> str:
    """A fixed revision for ``spec``: ``+N`` from the current revision, ``REV+N``/``REV-N``
    along the chain (the chain is linear), else ``spec`` itself."""
    base, sign, count = spec.rpartition("+") if "+" in spec else spec.rpartition("-")
    if not sign or not count.isdigit():
        return spec
    start = revisions.resolve(base) if base else commands.status(settings).current_revision
    index = revisions.position(start) + (int(count) if sign == "+" else -int(count))
    if not 0 <= index <= len(revisions.ids()):
        raise ConfigError(f"{spec} is outside the revision chain", hint="see `alembic history`")
    return revisions.BASE if index == 0 else revisions.ids()[index - 1]


def _exit_like_the_cli(error: LLMProxyDBError) -> None:
    """One ``Error:`` and one ``Hint:`` line (or a JSON line), and the CLI's exit code."""
    if json_logs():
        log_message("error", error.message, event="error", hint=error.hint, exit_code=error.exit_code)
    else:
        print(f"Error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"Hint: {error.hint}", file=sys.stderr)
    sys.exit(error.exit_code)
