"""anyir as users install it: a wheel built from the checkout's files, installed apart from the source.

The wheel must carry every module, the recipes (data_recipes/**/*.yaml, subfolders included) and the
published numbers (leaderboard/published.csv); installed, it must find them without the repository,
and ``python -m anyir quickstart`` run from an empty folder must write only under that folder.
An editable install must read the checkout's own files instead (edits take effect at once).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from anyir import __version__, resources

REPO = Path(__file__).resolve().parents[1]
# Added to the copy only: a recipe subfolder (tracks/) must ship like the top-level recipes.
PROBE = "data_recipes/tracks/_packaging_probe.yaml"
OFFLINE = {"NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command; on failure, fail the test with its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH (a worktree on it would shadow the install under test)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "ANYIR_LEADERBOARD",
                                                              "ANYIR_DATA_ROOT")}
    return {**env, **OFFLINE, **extra}


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime: a snapshot to prove nothing was written."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def checkout_files() -> list[str]:
    """What a clean clone of the working tree would hold: tracked files plus new, not-ignored ones."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the wheel is built from the checkout's files")
    out = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO)
    return sorted(f for f in out.split("\0") if f and (REPO / f).is_file())  # deleted, not yet staged: gone


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """The checkout's files copied into a fresh folder, plus a probe recipe in a subfolder."""
    copy = tmp_path_factory.mktemp("checkout")
    for name in checkout_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    (copy / PROBE).parent.mkdir(parents=True, exist_ok=True)
    (copy / PROBE).write_text("# placeholder: recipe subfolders ship in the wheel\n")
    return copy


@pytest.fixture(scope="module")
def wheel(source_copy, tmp_path_factory) -> Path:
    """``pip wheel`` of the copy (no isolation: offline, with the venv's setuptools)."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-q", "-w", str(dist), str(source_copy)], cwd=dist, env=clean_env())
    (built,) = dist.glob("anyir-*.whl")
    return built


@pytest.fixture(scope="module")
def target(wheel, tmp_path_factory) -> Path:
    """The wheel installed into a folder inside an unrelated git repository (as a project's .venv is)."""
    project = tmp_path_factory.mktemp("unrelated_project")
    run(["git", "init", "-q"], cwd=project)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"], cwd=project)
    site = project / "site"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q", "--target", str(site),
         str(wheel)], cwd=project, env=clean_env())
    return site


def probe_resources(cwd: Path, env: dict[str, str], python_args: list[str], prelude: str = "") -> dict:
    """Where a separate interpreter finds anyir and its shipped files (stdlib imports only)."""
    code = prelude + (
        "import json, anyir; from anyir import resources as r; "
        "print(json.dumps({'init': anyir.__file__, 'recipes': r.shipped_recipes(), "
        "'tracks': r.shipped_recipes('tracks'), 'demo': str(r.recipe_path('demo')), "
        "'probe': str(r.recipe_path('tracks/_packaging_probe')), 'csv': str(r.published_csv()), "
        "'checkout': str(r.source_checkout())}))")
    return json.loads(run([sys.executable, *python_args, "-c", code], cwd=cwd, env=env).strip().splitlines()[-1])


def test_shipped_recipes_and_published_csv_are_found_in_process():
    names = resources.shipped_recipes()
    assert {"demo", "aio3", "aio3_rebalanced", "aio5", "cdd11"} <= set(names)
    assert "\nname: demo\n" in resources.recipe_path("demo").read_text(encoding="utf-8")
    assert resources.recipe_path("no_such_recipe") is None
    assert resources.recipe_path("../pyproject") is None  # names never leave the recipe folder
    assert resources.shipped_recipes("..") == []
    assert resources.published_csv().read_text(encoding="utf-8").startswith("setting,method,")


def test_wheel_holds_every_module_every_recipe_and_the_published_csv(source_copy, wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    files = [str(p.relative_to(source_copy)) for p in source_copy.rglob("*") if p.is_file()]
    modules = {f for f in files if f.startswith("anyir/") and f.endswith((".py", "py.typed"))}
    missing = sorted(modules - names)
    assert not missing, f"modules missing from the wheel (add their package to pyproject [tool.setuptools] packages): {missing}"
    recipes = {"anyir/recipes/" + f.removeprefix("data_recipes/") for f in files
               if f.startswith("data_recipes/") and f.endswith(".yaml")}
    assert "anyir/recipes/tracks/_packaging_probe.yaml" in recipes and "anyir/recipes/demo.yaml" in recipes
    assert recipes <= names, sorted(recipes - names)
    assert {n for n in names if n.startswith("anyir/published/")} == {"anyir/published/published.csv"}
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("anyir/published/published.csv") == (source_copy / "leaderboard/published.csv").read_bytes()
    assert {n.split("/")[0] for n in names} == {"anyir", wheel.name.split("-py")[0] + ".dist-info"}


def test_installed_wheel_finds_its_files_from_an_empty_folder(target, tmp_path):
    before = tree(target)
    found = probe_resources(tmp_path, clean_env(PYTHONPATH=str(target)), [])
    assert Path(found["init"]).is_relative_to(target), found["init"]
    assert found["checkout"] == "None"  # site-packages is no checkout, even inside a git repository
    assert {"demo", "aio3", "aio5"} <= set(found["recipes"])
    assert "tracks/_packaging_probe" in found["tracks"]
    for key in ("demo", "probe", "csv"):
        assert Path(found[key]).is_relative_to(target / "anyir"), (key, found[key])
    assert tree(target) == before and list(tmp_path.iterdir()) == []


def test_editable_install_reads_the_checkout_files(source_copy, tmp_path):
    prefix = tmp_path / "prefix"
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-q", "--ignore-installed", "--prefix", str(prefix), "-e", str(source_copy)], cwd=tmp_path, env=clean_env())
    (site,) = prefix.glob("lib/python*/site-packages")
    empty = tmp_path / "empty"
    empty.mkdir()
    # -S: no site-packages but the editable install's, so the venv's own anyir cannot answer instead.
    found = probe_resources(empty, clean_env(), ["-S"], prelude=f"import site; site.addsitedir({str(site)!r}); ")
    assert Path(found["init"]).is_relative_to(source_copy)
    assert Path(found["checkout"]) == source_copy
    assert Path(found["demo"]) == source_copy / "data_recipes/demo.yaml"
    assert Path(found["probe"]) == source_copy / PROBE
    assert Path(found["csv"]) == source_copy / "leaderboard/published.csv"
    assert "tracks/_packaging_probe" in found["tracks"]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quickstart_runs_from_the_installed_wheel_in_an_empty_folder(target, source_copy, tmp_path):
    workdir = tmp_path / "empty"
    workdir.mkdir()
    before = tree(target)
    env = clean_env(PYTHONPATH=str(target))
    where = run([sys.executable, "-c", "import anyir; print(anyir.__file__)"], cwd=workdir, env=env).strip()
    assert Path(where).is_relative_to(target), where  # the wheel's anyir, not the venv's editable one
    out = run([sys.executable, "-m", "anyir", "quickstart", "--steps", "3", "--batch-size", "2", "--crop", "32"],
              cwd=workdir, env=env, timeout=1400)
    # The table shows the seed paper's AnyIR-T numbers: published.csv was read from the wheel.
    with open(source_copy / "leaderboard/published.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if (r["setting"], r["method"], r["task"], r["dataset"])
                == ("aio3", "AnyIR-T", "derain", "rain100l")]
    value = {r["metric"]: float(r["value"]) for r in rows}
    assert f"{value['psnr']:.2f}/{value['ssim']:.3f}" in out, out[-3000:]
    assert (workdir / "shards/demo/manifest.json").is_file()
    (run_dir,) = (workdir / "runs").glob("quickstart-*")
    assert (run_dir / "model.safetensors").is_file()
    assert (workdir / "leaderboard/leaderboard.duckdb").is_file()
    # Installed inside an unrelated git repository: the run records the package version, not its commit.
    assert json.loads((run_dir / "train_summary.json").read_text())["code_version"] == __version__
    assert tree(target) == before, "quickstart wrote into the installed package"
