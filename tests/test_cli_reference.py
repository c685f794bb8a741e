"""docs/cli.md and ``--help`` agree: the same commands, each with the same options.

The commands and options are read from the real Typer app's ``--help`` output, command by
command; the documentation side from the ``### `llm-proxy ...` `` headings of docs/cli.md
and the first cell of the option tables under each.  Adding a command therefore only needs
a section in docs/cli.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_proxy_db.cli.app import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HEADING = re.compile(r"^#{2,4} `(llm-proxy-db[^`]*)`\s*$")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
PANEL = re.compile(r"^\W*(Options|Commands|Arguments)\b")
ROW = re.compile(r"^[│|]?\s{0,2}\S")  # a new row, not a wrapped continuation line
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}

runner = CliRunner()


def help_sections(path: tuple[str, ...]) -> dict[str, list[str]]:
    """The first column of each row in each panel (Options, Commands) of ``path --help``.

    Works on Typer's rich panels (``│ --to  <str>  ...``) and on plain Click output
    (``  --to TEXT  ...``); a row's first column ends at the first gap of two spaces.
    """
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in result.stdout.splitlines():
        stripped = line.strip()
        panel = PANEL.match(line)
        if panel:
            current = panel.group(1)
            sections[current] = []
        elif stripped.startswith(("╰", "└")):
            current = None
        elif current is not None and ROW.match(line):
            content = line.strip().strip("│|").strip()
            sections[current].append(re.split(r"\s{2,}", content)[0])
    return sections


def from_help() -> dict[str, set[str]]:
    """Every command path (``llm-proxy-db migrate up``) with its options, read from --help."""
    found: dict[str, set[str]] = {}
    pending: list[tuple[str, ...]] = [()]
    while pending:
        path = pending.pop()
        sections = help_sections(path)
        options = {opt for row in sections.get("Options", []) for opt in OPTION.findall(row)}
        found[" ".join(("llm-proxy-db", *path))] = options - {"--help"}
        pending += [(*path, row.split()[0]) for row in sections.get("Commands", [])]
    return found


def from_doc() -> dict[str, set[str]]:
    """Every documented command path with the options in the first cell of its tables."""
    documented: dict[str, set[str]] = {}
    current: str | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = HEADING.match(line)
        if heading:
            current = heading.group(1).strip()
            assert current not in documented, f"{current} is documented twice"
            documented[current] = set()
        elif line.startswith("#"):
            current = None
        elif current and line.startswith("| `--"):
            first_cell = line.split("|")[1]
            documented[current] |= set(OPTION.findall(first_cell))
    return documented


@pytest.fixture(scope="module")
def actual() -> dict[str, set[str]]:
    """What --help says (computed once)."""
    return from_help()


def test_help_is_parsed(actual: dict[str, set[str]]) -> None:
    """Guard against a silent pass: the parser finds known commands and options."""
    assert {"llm-proxy-db", "llm-proxy-db migrate", "llm-proxy-db migrate up"} <= set(actual)
    assert "--database-url" in actual["llm-proxy-db"]
    assert {"--to", "--sql", "--from"} <= actual["llm-proxy-db migrate up"]


def test_every_command_is_documented_and_every_documented_command_exists(
    actual: dict[str, set[str]],
) -> None:
    """A command missing from docs/cli.md, or documented but gone, fails here."""
    documented = from_doc()
    assert sorted(set(actual) - set(documented)) == [], "commands missing from docs/cli.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/cli.md documents unknown commands"


def test_every_option_is_documented_and_every_documented_option_exists(
    actual: dict[str, set[str]],
) -> None:
    """Options compared command by command, in both directions."""
    documented = from_doc()
    mismatches = {
        command: {
            "undocumented": sorted(options - documented.get(command, set())),
            "not in --help": sorted(documented.get(command, set()) - options),
        }
        for command, options in actual.items()
        if options != documented.get(command, set())
    }
    assert mismatches == {}
