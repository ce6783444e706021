"""docs/datasets.md cannot drift from the code: every layout variant the code matches is named there."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from anyir.data.sources.layout_source import LayoutName
from anyir.data.sources.layouts import layout_variants

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
VARIANTS = sorted({(layout, v.description) for layout in get_args(LayoutName) for split in ("train", "test")
                   for v in layout_variants(layout, split)})


@pytest.mark.parametrize("layout,description", VARIANTS, ids=[f"{lay}: {d}" for lay, d in VARIANTS])
def test_every_layout_variant_is_documented(layout, description):
    text = DOC.read_text(encoding="utf-8")
    assert f"layout `{layout}`" in text, f"docs/datasets.md has no section for layout {layout}"
    assert f"`{description}`" in text, f"docs/datasets.md does not describe the {layout} variant [{description}]"


def test_the_doc_does_not_cite_files_outside_the_repository():
    assert "shared/" not in DOC.read_text(encoding="utf-8")
