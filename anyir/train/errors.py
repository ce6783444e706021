"""Errors the user can fix by changing an option; the CLI prints them as one line (exit code 2)."""

from __future__ import annotations


class TrainSetupError(ValueError):
    """Options that cannot work together (e.g. a global batch not divisible by the world size)."""


class RunDirError(TrainSetupError):
    """The run folder is in a state the requested action cannot use (exists / nothing to resume)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stopped and the last good checkpoint was kept."""


class DiskFullError(RuntimeError):
    """The disk holding the run folder filled up; the message names it and the last good checkpoint."""
