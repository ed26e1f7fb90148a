"""Which process runs a run, and whether it is still alive: a run whose process is gone (killed,
crashed) is closed by the next command that looks, instead of staying ``running`` forever."""

from __future__ import annotations

import os
import socket
from typing import Any


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (Linux): state first."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(fields: list[bytes] | None) -> int | None:
    """When the process of these ``_stat`` fields started, in clock ticks since boot: tells a
    process from a later one that got its pid."""
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """This process (or the child ``pid`` on this host): host, pid and start time."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "pid": pid, "started": _start_ticks(_stat(pid))}


def process_gone(identity: dict[str, Any] | None) -> bool:
    """Whether the process ``identity`` names has certainly ended: on this host, with no process
    of that pid, a zombie (killed, its exit not yet collected by its parent), or one that started
    at another time. A process on another host, or of unknown identity, is not known to be gone."""
    if not identity or identity.get("host") != socket.gethostname() or not isinstance(identity.get("pid"), int):
        return False
    pid = identity["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process of that pid: alive
    fields = _stat(pid)  # read once: its state and its start
    if fields and fields[0] in (b"Z", b"X"):
        return True
    started = identity.get("started")
    now = _start_ticks(fields)
    return started is not None and now is not None and now != started
