"""Every relative link in the README and docs points at a file a clone has; none cites the workspace's shared folder.

Links are markdown inline links and images ``[text](target)``, reference definitions
``[label]: target`` and HTML ``href``/``src`` attributes, outside code blocks and code spans.
External links (any ``scheme:``) are not fetched; ``#anchor`` parts are stripped. A target must be a
tracked (or new, not ignored) file of the checkout, or a folder holding one: a link to a
git-ignored output (shards/demo, runs/) would be dead in a fresh clone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "shards/README.md", "leaderboard/README.md",
        *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("**/*.md"))]
# A clone has no shared folder beside it: the facts belong in docs/, in the repository's own words.
SHARED_DIR = "../" + "shared"  # spelled in parts (here and below) so that this file does not cite it
SHARED = re.compile(re.escape(SHARED_DIR) + r"\b|\b" + r"shared/" + r"reference\b")

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]+`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*(<[^>\n]*>|[^\s)]+)(?:\s+[\"'(][^)\n]*)?\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]\n]+\]:\s*(<[^>\n]*>|\S+)", re.MULTILINE)
HTML_ATTR = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def link_targets(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link outside code blocks and code spans."""
    # Blank out code but keep line breaks, so line numbers stay right.
    text = FENCE.sub(lambda m: "\n" * m.group().count("\n"), text)
    text = CODE_SPAN.sub(lambda m: "`" + re.sub(r"[\[\]()<>]", "_", m.group()[1:-1]) + "`", text)
    found = []
    for pattern in (INLINE_LINK, REFERENCE, HTML_ATTR):
        for match in pattern.finditer(text):
            found.append((text.count("\n", 0, match.start()) + 1, match.group(1).strip("<>")))
    return sorted(found)


def checkout_files(root: Path) -> set[str]:
    """Tracked files plus new, not-ignored ones; every file when root is not a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=root,
                             capture_output=True, text=True, check=True, timeout=60).stdout
        return {f for f in out.split("\0") if f and (root / f).is_file()}
    except (OSError, subprocess.SubprocessError):
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


def broken_links(doc: Path, root: Path, files: set[str]) -> list[str]:
    """'doc:line: target (why)' for every relative link whose target a clone would not have."""
    problems = []
    text = doc.read_text(encoding="utf-8")
    for line, target in link_targets(text):
        if SHARED.search(target):
            problems.append(f"{doc.relative_to(root)}:{line}: {target} (cites {SHARED_DIR}, which a clone lacks)")
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if SCHEME.match(target) or not path:  # http(s), mailto, ...; or a same-page #anchor
            continue
        resolved = (root / path.lstrip("/")) if path.startswith("/") else (doc.parent / path)
        try:
            rel = resolved.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            problems.append(f"{doc.relative_to(root)}:{line}: {target} (outside the repository)")
            continue
        if rel not in files and not any(f.startswith(rel.rstrip("/") + "/") for f in files) and rel != ".":
            problems.append(f"{doc.relative_to(root)}:{line}: {target} (no such file in the repository)")
    for number, text_line in enumerate(text.splitlines(), start=1):
        if SHARED.search(text_line):
            problems.append(f"{doc.relative_to(root)}:{number}: cites {SHARED.search(text_line).group()} "
                            f"(a clone has no shared/; put the facts into docs/)")
    return problems


def test_the_checker_finds_dead_links_and_shared_citations(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "real.py").write_text("x = 1\n")
    doc = tmp_path / "docs" / "guide.md"
    doc.write_text(
        "See [the code](../real.py#L1), [missing](../nope.md), ![img](pic.png) and [web](https://x.org/a.md).\n"
        "[section](#install)\n[ref]: ../gone.txt\n"
        "```\n[in a fence](../fenced.md)\n```\n"
        "`[in a span](../span.md)` and [`real.py`](<../real.py> \"title\") and <a href=\"../html.md\">h</a>\n"
        f"Facts: {SHARED_DIR}/reference/protocols.md\n")
    problems = broken_links(doc, tmp_path, {"real.py", "docs/guide.md"})
    assert [p.split(": ", 1)[1] for p in problems] == [
        "../nope.md (no such file in the repository)",
        "pic.png (no such file in the repository)",
        "../gone.txt (no such file in the repository)",
        "../html.md (no such file in the repository)",
        f"cites {SHARED_DIR} (a clone has no shared/; put the facts into docs/)",
    ], problems


def test_docs_exist():
    assert "docs/install.md" in DOCS and all((REPO / d).is_file() for d in DOCS)


@pytest.mark.parametrize("doc", DOCS)
def test_doc_links_point_at_files_a_clone_has(doc):
    problems = broken_links(REPO / doc, REPO, checkout_files(REPO))
    assert not problems, "\n".join(problems)
