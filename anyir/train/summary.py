"""The run folder as the record: resolved config, command line, code version, and the summary JSON."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from anyir import __version__, resources
from anyir.train.config import TrainConfig

SUMMARY_FILE = "train_summary.json"


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree when available, else the package version.

    Only an anyir source checkout is described: an installed package's parent folder is site-packages,
    which may sit inside some unrelated repository (a project's .venv) whose commit would be a lie.
    """
    repo = resources.source_checkout()
    if repo is None:
        return __version__
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"], cwd=repo,
            capture_output=True, text=True, timeout=10, check=True,
            # The checkout itself must be the work tree's top: never describe a repository above it.
            env={**os.environ, "GIT_CEILING_DIRECTORIES": str(repo.parent)},
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    described = out.stdout.strip()
    return f"{__version__}+git.{described}" if described else __version__


def command_line() -> str:
    """The command that started this process, shell-quoted (torchrun's children see their own argv)."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def write_run_record(run_dir: Path, cfg: TrainConfig) -> None:
    """Write ``config.yaml`` (resolved) and ``command.txt`` at the start of a run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    with open(run_dir / "command.txt", "a") as f:  # appended: a resumed run adds its own line
        f.write(command_line() + "\n")


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Write ``train_summary.json`` atomically (temp + rename) and return its path."""
    path = run_dir / SUMMARY_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_summary(run_dir: Path) -> dict[str, Any]:
    """Read ``RUN_DIR/train_summary.json``."""
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
