"""The ``paired`` source kind: any two folders of degraded and clean images, paired by a name rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from anyir.data.sources.base import Resolver, ScanResult, SourceBase, expand_pair
from anyir.data.sources.refs import file_ref
from anyir.data.sources.synthetic import list_images


class PairedFolderSource(SourceBase):
    """Degraded images in ``lq_dir``, clean ones in ``gt_dir``.

    ``rule``: ``same_name`` (default), ``same_stem`` (any image extension), or ``regex``:
    the clean name is ``re.sub(lq_regex, gt_template, lq_name)``, e.g. lq_regex ``^rain-(\\d+)``,
    gt_template ``norain-\\1``. Pairs are never formed by sorted order.
    """

    kind: Literal["paired"] = "paired"
    lq_dir: str
    gt_dir: str
    rule: Literal["same_name", "same_stem", "regex"] = "same_name"
    lq_regex: str | None = None
    gt_template: str | None = None

    @model_validator(mode="after")
    def _regex_fields(self) -> PairedFolderSource:
        if (self.rule == "regex") != (self.lq_regex is not None and self.gt_template is not None):
            raise ValueError(f"source {self.name!r}: rule 'regex' needs lq_regex and gt_template (and only it uses them)")
        if self.lq_regex is not None:
            re.compile(self.lq_regex)
        if self.degradation is not None:
            raise ValueError(f"source {self.name!r}: paired folders hold real pairs; remove 'degradation'")
        return self

    def clean_name(self, lq_name: str, gt_names: dict[str, str]) -> str | None:
        """The clean file name for a degraded name under the rule, or None when absent."""
        if self.rule == "same_name":
            return lq_name if lq_name in gt_names.values() else None
        if self.rule == "same_stem":
            return gt_names.get(Path(lq_name).stem)
        target = re.sub(self.lq_regex, self.gt_template, lq_name)
        return target if target in gt_names.values() else None

    def scan(self, resolve: Resolver) -> ScanResult:
        """Pair every degraded image with its clean partner; unpaired ones are rejections."""
        lq_dir, gt_dir = resolve(self.lq_dir), resolve(self.gt_dir)
        rule = f"regex {self.lq_regex!r} -> {self.gt_template!r}" if self.rule == "regex" else self.rule
        result = self.new_result(f"paired folders ({rule})")
        lq_paths = list_images(lq_dir, self, result.rejections)
        gt_paths = list_images(gt_dir, self, result.rejections)
        gt_names = {p.stem: p.name for p in gt_paths}
        for lq in lq_paths:
            name = self.clean_name(lq.name, gt_names)
            if name is None:
                result.rejections.append(self.reject(str(lq), f"degraded image has no clean partner in {gt_dir} "
                                                              f"(rule {self.rule})"))
                continue
            files = {"lq": lq.name, "gt": name}
            result.items += expand_pair(self, file_ref(gt_dir / name), file_ref(lq), lq.name, files)
        return result
