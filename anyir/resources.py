"""The files anyir ships: recipes (``data_recipes/**/*.yaml``) and published numbers (``leaderboard/published.csv``).

One copy of each file, found two ways:

- installed from a wheel (``pip install anyir``, ``pip install git+URL``): package data under
  ``anyir/recipes/`` and ``anyir/published/``; pyproject.toml maps those package names onto the
  repository's ``data_recipes/`` and ``leaderboard/`` folders, so the wheel carries the tracked files;
- a source checkout (git clone with ``pip install -e .`` or ``PYTHONPATH``): the tracked folders
  next to the package, so edits to a recipe take effect without reinstalling.

Nothing is ever written here: outputs (shards, runs, the leaderboard database) default to paths
relative to the current folder (see docs/install.md).
"""

from __future__ import annotations

import atexit
import contextlib
import re
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

PACKAGE = "anyir"
# (folder inside the installed package, folder in the repository): keep in step with pyproject.toml's
# [tool.setuptools.package-dir].
RECIPES = ("recipes", "data_recipes")
PUBLISHED = ("published", "leaderboard")
PUBLISHED_FILE = "published.csv"
RECIPE_SUFFIX = ".yaml"

# Files extracted from a zipped install (as_file) must outlive the call that found them.
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def source_checkout() -> Path | None:
    """The repository root when this package runs from an anyir source checkout, else None.

    A checkout is the package's parent folder holding a pyproject.toml whose project is anyir: an
    installed package's parent is site-packages, which never qualifies.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if re.search(r'^name\s*=\s*"anyir"\s*$', text, flags=re.MULTILINE) else None


def _shipped_dir(folder: tuple[str, str]) -> Traversable:
    """The shipped folder: package data when installed from a wheel, else the checkout's folder."""
    packaged = files(PACKAGE).joinpath(folder[0])
    if packaged.is_dir():
        return packaged
    root = source_checkout()
    if root is not None and (root / folder[1]).is_dir():
        return root / folder[1]
    raise FileNotFoundError(f"{files(PACKAGE)}: the installed anyir lacks its data folder {folder[0]}/ "
                            f"(a broken install); reinstall it: pip install --force-reinstall anyir")


def _real_path(resource: Traversable) -> Path:
    """A file-system path for a file resource (extracted to a temporary file for zipped installs)."""
    if isinstance(resource, Path):
        return resource
    return _extracted.enter_context(as_file(resource))


def _name_parts(name: str) -> list[str] | None:
    """``tracks/aio3`` -> ``["tracks", "aio3"]``; None for names that would leave the recipe folder."""
    parts = [p for p in name.split("/") if p]
    return None if any(p in (".", "..") or "\\" in p for p in parts) else parts


def recipe_dir() -> Traversable:
    """The folder of shipped recipes (``data_recipes/`` in the repository)."""
    return _shipped_dir(RECIPES)


def shipped_recipes(subfolder: str = "") -> list[str]:
    """Names of the shipped ``*.yaml`` files directly in ``data_recipes/<subfolder>``, sorted.

    ``shipped_recipes()`` -> ``["aio3", "demo", ...]``; ``shipped_recipes("tracks")`` ->
    ``["tracks/<name>", ...]`` (names keep the subfolder, so :func:`recipe_path` takes them back).
    """
    folder = recipe_dir()
    parts = _name_parts(subfolder)
    if parts is None:
        return []
    for part in parts:
        folder = folder.joinpath(part)
    if not folder.is_dir():
        return []
    prefix = "".join(f"{p}/" for p in parts)
    return sorted(prefix + entry.name[: -len(RECIPE_SUFFIX)] for entry in folder.iterdir()
                  if entry.is_file() and entry.name.endswith(RECIPE_SUFFIX))


def recipe_path(name: str) -> Path | None:
    """The shipped file for a recipe name (``demo``, ``tracks/<name>``), or None when none ships."""
    parts = _name_parts(name)
    if not parts:
        return None
    resource = recipe_dir()
    for part in parts[:-1]:
        resource = resource.joinpath(part)
    resource = resource.joinpath(parts[-1] + RECIPE_SUFFIX)
    return _real_path(resource) if resource.is_file() else None


def published_csv() -> Path:
    """The shipped ``leaderboard/published.csv`` (published reference numbers)."""
    resource = _shipped_dir(PUBLISHED).joinpath(PUBLISHED_FILE)
    if not resource.is_file():
        raise FileNotFoundError(f"{resource}: published numbers missing from the installed anyir; "
                                f"reinstall it: pip install --force-reinstall anyir")
    return _real_path(resource)
