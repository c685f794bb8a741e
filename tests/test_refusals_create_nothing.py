"""A refused command creates no file (issue 21 item 20, as a class).

Every refusal a command can give on a SQLite path that does not exist yet (and the
"nothing to do" of a downgrade there) leaves the directory as it was: no database, no lock
file, no backup directory.  "cannot go down N steps" is a bad option (exit 2), not an unknown
revision (exit 5).  ``migrate adopt`` (and its dry run) on a missing path is refused too:
there is nothing to adopt (it used to build a new database, lock file included).
"""

from __future__ import annotations

import pytest

from tests.test_inputs import run

REFUSED = [
    (["migrate", "adopt", "--to", "9999"], 5),
    (["migrate", "adopt", "--force-stamp", "0003"], 2),
    (["migrate", "down", "--steps", "1"], 2),
    (["migrate", "down", "--to", "0003"], 2),
    (["migrate", "down", "--to", "9999"], 5),
    (["migrate", "up", "--to", "9999"], 5),
    (["migrate", "up", "--keep-backups", "0"], 2),
    (["setup", "--lock-timeout", "nan"], 2),
    (["migrate", "rehearse"], 2),
    (["db", "backup"], 8),
    (["db", "restore", "no-such.bak"], 8),
    (["migrate", "down", "--to", "base"], 0),  # nothing to do at base: nothing to create either
    (["migrate", "adopt"], 2),  # nothing to adopt (issue 21 review F5b: it built the database)
    (["migrate", "adopt", "--dry-run"], 2),  # the dry run says what the run would
    (["migrate", "status"], 0),
    (["migrate", "log"], 0),
]


@pytest.mark.parametrize(("argv", "exit_code"), REFUSED, ids=lambda value: " ".join(map(str, value))
                         if isinstance(value, list) else str(value))
def test_a_refused_command_creates_no_file(monkeypatch, capsys, tmp_path, argv, exit_code) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "data" / "llm-proxy.db"
    code, _, err = run(monkeypatch, capsys, ["--database-path", str(database), *argv])
    assert code == exit_code, err
    assert sorted(tmp_path.rglob("*")) == [], err
    if code:
        assert err.startswith("Error: ") and "\nHint: " in err, err


def test_too_many_steps_is_a_bad_option_with_the_limit(monkeypatch, capsys, tmp_path) -> None:
    database = tmp_path / "llm-proxy.db"
    assert run(monkeypatch, capsys, ["--database-path", str(database), "migrate", "up", "--to", "0002"])[0] == 0
    code, _, err = run(monkeypatch, capsys, ["--database-path", str(database), "migrate", "down", "--steps", "3"])
    assert code == 2, err
    assert "cannot go down 3 step(s): the database is only 2 revision(s) above base" in err
    assert "Hint: use --steps 2 or less (or --to base); nothing was changed" in err
