"""Process liveness: one check shared by every stage that leaves pid-stamped files (shard builds,
run folders, evaluation records) and must tell a live owner from a dead one."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while a process ``pid`` exists on this host (a zombie counts: it may still be exiting)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
