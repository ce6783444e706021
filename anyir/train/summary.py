"""What a run records about the code and the command that made it (files: anyir.train.run_dir)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from anyir import __version__


def code_version() -> str:
    """``git describe --always --dirty`` of the source tree when available, else the package version."""
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"], cwd=repo,
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    described = out.stdout.strip()
    return f"{__version__}+git.{described}" if described else __version__


def command_line() -> str:
    """The command that started this process, shell-quoted (torchrun's children see their own argv)."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
