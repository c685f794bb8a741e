"""The documentation is self-contained: no link or path in README.md or docs/*.md leaves the
repository, and every link inside it reaches a file and heading that exist.

The service's facts live in docs/service.md (the project's own words); nothing points at a
file beside the repository (``../shared/...``) or at a machine's own paths (``/work/...``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>")
CODE_PATH = re.compile(r"`(\.\./[^`\s]*)`")
OUTSIDE = re.compile(r"shared/reference|/work/|https?://(?!offline/)[\w.-]+\.[a-z]{2,}/?\S*")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = re.match(r"#{1,6} (.+)", line)
        if heading and not in_code:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_link_or_path_leaves_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    leaving = [m.group(0) for m in OUTSIDE.finditer(text)]
    for match in CODE_PATH.finditer(text):
        if not (doc.parent / match.group(1)).resolve().is_relative_to(ROOT):
            leaving.append(match.group(1))
    assert leaving == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_reaches_a_file_and_heading_in_the_repository(doc: Path) -> None:
    broken = []
    for match in LINK.finditer(doc.read_text(encoding="utf-8")):
        target = match.group(1) or match.group(2)
        if target.startswith(("http://", "https://", "mailto:")):
            broken.append(f"{target} (outside the repository)")
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no such heading)")
    assert broken == []


def test_the_service_page_is_linked_from_the_readme() -> None:
    assert "(docs/service.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
