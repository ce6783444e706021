"""What a run records about the code and the command that made it (files: anyir.train.run_dir)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from anyir import __version__, resources


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
