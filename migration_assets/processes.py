"""Which process runs a run, and whether it is still alive: a run whose process is gone (killed,
crashed) is closed by the next command that looks, instead of staying ``running`` forever."""

from __future__ import annotations

import os
import socket
from typing import Any


def _start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (Linux): tells a process from a later
    one that got its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """This process (or the child ``pid`` on this host): host, pid and start time."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "pid": pid, "started": _start_ticks(pid)}


def process_gone(identity: dict[str, Any] | None) -> bool:
    """Whether the process ``identity`` names has certainly ended: on this host, with no process
    of that pid, or one that started at another time. A process on another host, or of unknown
    identity, is not known to be gone."""
    if not identity or identity.get("host") != socket.gethostname() or not isinstance(identity.get("pid"), int):
        return False
    pid = identity["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process of that pid: alive
    started = identity.get("started")
    now = _start_ticks(pid)
    return started is not None and now is not None and now != started
