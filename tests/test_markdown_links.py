"""The project's documentation points only at files of the project: every relative link in a tracked
Markdown file resolves to a file or folder inside the repository, and no path in it climbs out of it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support.procs import ROOT

_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_EXTERNAL = re.compile(r"(?i)^(?:[a-z][a-z0-9+.-]*:|#)")  # https:, mailto:, an anchor in the same page
_CLIMBING = re.compile(r"(?<![\w./])(?:\.\./)+[\w.-]")  # ../x written anywhere, in a link or as code


def _markdown() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.md"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / name for name in out.split("\0") if name]


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT.resolve())


def test_every_relative_link_in_the_docs_resolves_inside_the_repository() -> None:
    files = _markdown()
    assert ROOT / "README.md" in files
    assert ROOT / "docs" / "api.md" in files
    broken = []
    for md in files:
        text = md.read_text(encoding="utf-8")
        for target in _LINK.findall(text):
            if _EXTERNAL.match(target):
                continue
            path = (md.parent / target.split("#", 1)[0]).resolve()
            if not _inside(path) or not path.exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
        for match in _CLIMBING.finditer(text):
            start = text.rfind("\n", 0, match.start()) + 1
            token = re.split(r"[\s`)\]]", text[match.start() :], maxsplit=1)[0]
            if not _inside(md.parent / token):
                broken.append(f"{md.relative_to(ROOT)}:{text.count(chr(10), 0, start) + 1}: {token}")
    assert broken == [], "links or paths outside the repository (or to nothing):\n" + "\n".join(broken)
