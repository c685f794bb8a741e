"""Plain ``alembic`` from the repository root, configured only by the service's variables, and
guarded like ``llm-proxy-db migrate`` (the shared safety cases are parametrized over both entry
points in test_cli_safety.py and test_data_loss.py)."""

from __future__ import annotations

import json

import pytest

from llm_proxy_db import commands
from llm_proxy_db.config.settings import Settings
from llm_proxy_db.migration import revisions
from tests.entry_points import alembic
from tests.safety_helpers import revision_of, rows, seed


def test_upgrade_check_downgrade_from_the_repo_root(settings):
    outputs = {}
    for args in (["upgrade", "head"], ["check"], ["current"], ["downgrade", "base"]):
        done = alembic(settings, *args)
        assert done.returncode == 0, f"alembic {' '.join(args)}:\n{done.stderr}"
        outputs[args[0]] = done.stdout + done.stderr
    assert "No new upgrade operations detected" in outputs["check"]
    assert "0007 (head)" in outputs["current"]
    assert "Running downgrade 0001 -> " in outputs["downgrade"]


def test_read_only_alembic_commands_create_no_file(sqlite_settings):
    done = alembic(sqlite_settings, "current")
    assert done.returncode != 0
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert not sqlite_settings.database_path.parent.exists()


def test_every_alembic_change_is_in_the_run_log(settings: Settings) -> None:
    """upgrade, relative downgrade and stamp each write the CLI's run-log rows."""
    assert alembic(settings, "upgrade", "0005").returncode == 0
    assert alembic(settings, "upgrade", "+1").returncode == 0
    assert alembic(settings, "downgrade", "-1").returncode == 0
    done = alembic(settings, "stamp", "0003")
    assert done.returncode == 0, done.stderr
    assert revision_of(settings) == "0003"
    log = [(entry.action, entry.revision, entry.from_revision, entry.to_revision) for entry in commands.log(settings)]
    assert log[:5] == [("upgrade", rev, prev, rev) for prev, rev in zip([None, *revisions.ids()[:4]],
                                                                           revisions.ids()[:5], strict=True)]
    assert log[5:] == [("upgrade", "0006", "0005", "0006"), ("downgrade", "0006", "0006", "0005"),
                       ("stamp", "0003", "0005", "0003")]


def test_allow_data_loss_from_the_environment_and_a_refused_stamp_above_head(sqlite_settings: Settings) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    seed(sqlite_settings)
    done = alembic(sqlite_settings, "downgrade", "0003", env={"LLM_PROXY_ALLOW_DATA_LOSS": "maybe"})
    assert done.returncode == 2 and "LLM_PROXY_ALLOW_DATA_LOSS='maybe' is not a boolean" in done.stderr
    done = alembic(sqlite_settings, "downgrade", "0003", env={"LLM_PROXY_ALLOW_DATA_LOSS": "1"})
    assert done.returncode == 0, done.stderr
    assert revision_of(sqlite_settings) == "0003"
    done = alembic(sqlite_settings, "stamp", "9999")
    assert done.returncode == 5 and "Error:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-x", "force=yes", "upgrade", "head"], "unknown -x argument(s): force"),
        (["-x", "no-backup=perhaps", "upgrade", "head"], "-x no-backup='perhaps' is not a boolean"),
        (["-x", "lock-timeout=-1", "upgrade", "head"], "-x lock-timeout='-1' is out of range"),
        (["-x", "keep-backups=0", "upgrade", "head"], "-x keep-backups='0' is out of range"),
        (["-x", "no-backup", "-x", "backup-dir=/tmp", "upgrade", "head"], "contradict"),
        (["upgrade", "head+3"], "head+3 is outside the revision chain"),
    ],
)
def test_bad_x_arguments_are_refused_like_bad_options(sqlite_settings: Settings, args, message) -> None:
    done = alembic(sqlite_settings, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Hint:" in done.stderr and "Traceback" not in done.stderr
    assert not sqlite_settings.database_path.exists() or revision_of(sqlite_settings) is None


def test_offline_sql_is_not_guarded(sqlite_settings: Settings) -> None:
    """``--sql`` never opens the database: no lock, no backup, no file."""
    done = alembic(sqlite_settings, "upgrade", "0003:0005", "--sql")
    assert done.returncode == 0, done.stderr
    assert "ALTER TABLE tokens ADD COLUMN cache_hit_count" in done.stdout
    assert not sqlite_settings.database_path.parent.exists()


def test_json_log_lines_from_plain_alembic(sqlite_settings: Settings) -> None:
    commands.upgrade(sqlite_settings, no_backup=True)
    seed(sqlite_settings)
    before = rows(sqlite_settings)
    env = {"LLM_PROXY_LOG_FORMAT": "json"}
    done = alembic(sqlite_settings, "downgrade", "-1", env=env)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line, Alembic's own too
    assert any(line["detail"] == "alembic.runtime.migration" for line in lines)
    assert [line["event"] for line in lines if line["detail"] != "alembic.runtime.migration"] == [
        "backup_done", "apply_start", "apply_success"
    ]
    done = alembic(sqlite_settings, "downgrade", "base", env=env)
    assert done.returncode == 11
    error = [json.loads(line) for line in done.stderr.splitlines()][-1]
    assert error["level"] == "error" and error["exit_code"] == 11 and "allow-data-loss" in error["hint"]
    assert rows(sqlite_settings) == before and revision_of(sqlite_settings) == "0006"


def _script_config(settings: Settings):
    """A config as a script builds it from alembic.ini (not through make_config): guarded."""
    from alembic.config import Config

    from tests.entry_points import REPO

    config = Config(str(REPO / "alembic.ini"))
    config.attributes["settings"] = settings
    config.attributes["configure_logger"] = False
    return config


def test_alembic_commands_called_from_a_script_are_guarded(sqlite_settings: Settings) -> None:
    from alembic import command
    from llm_proxy_db.errors import DataLossError

    config = _script_config(sqlite_settings)
    command.upgrade(config, "head")
    seed(sqlite_settings)
    before = rows(sqlite_settings)
    with pytest.raises(DataLossError):
        command.downgrade(config, "base")
    assert rows(sqlite_settings) == before
    command.downgrade(config, "head-1")
    command.upgrade(config, "+1")
    command.stamp(config, "heads")  # at head already: nothing to do, nothing logged
    command.stamp(config, "0006")
    command.downgrade(config, "-1")
    assert revision_of(sqlite_settings) == "0005"
    actions = [entry.action for entry in commands.log(sqlite_settings)]
    assert actions[-4:] == ["downgrade", "upgrade", "stamp", "downgrade"]
    backups = list(sqlite_settings.database_path.parent.glob("*.bak"))
    assert len(backups) >= 3


def test_x_arguments_are_parsed_like_options() -> None:
    from llm_proxy_db.cli.alembic_env import x_options
    from llm_proxy_db.errors import ConfigError

    assert x_options({}) == {"no_backup": False, "allow_data_loss": False}
    assert x_options({"allow-data-loss": "", "no-backup": "yes", "keep-backups": "3", "lock-timeout": "2.5"}) == {
        "no_backup": True, "allow_data_loss": True, "keep_backups": 3, "lock_timeout": 2.5,
    }
    assert x_options({"backup-dir": "/b"})["backup_dir"] == "/b"
    for bad in ({"allow-data-loss": "perhaps"}, {"keep-backups": "x"}, {"unknown": "1"}):
        with pytest.raises(ConfigError):
            x_options(bad)
