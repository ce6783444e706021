"""docs/faults.md: every fault row names the tests that back it, and every named test exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`(tests/test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_fault_row_is_backed_by_an_existing_test():
    text = (REPO / "docs" / "faults.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| what happens")]
    assert len(rows) >= 25
    missing = []
    for row in rows:
        named = NAMED.findall(row.rsplit("|", 2)[-2])  # the last column
        assert named, f"fault row without a test: {row[:80]}"
        missing += [f"{file}::{name}" for file, name in named if name not in defined_tests(REPO / file)]
    assert not missing, f"docs/faults.md names tests that do not exist: {missing}"
