"""A queue for SQLite's single writer, shared by every process that writes the same file.

SQLite lets one transaction write at a time; the others wait in its busy handler, which
sleeps up to 100 ms between tries. A run that writes batch after batch (the load or
embedding stage) leaves gaps of microseconds between its transactions, so a second run's
writer can miss every gap and fail with "database is locked" once the busy timeout is out:
starved, not deadlocked. Every write transaction here first takes an advisory file lock
next to the database (``<file>.writelock``, with a queue beside it), waits its turn with a
long deadline, and gives it back when the transaction ends; SQLite's own lock then only
covers the commit itself. (As with any SQLite connection, do not fork while a write
transaction is open: the child would hold the lock too.)
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import OperationalError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

WAIT_SECONDS = 600.0
"""How long a writer waits for other write transactions before giving up."""
POLL = 0.001
COURTESY = 0.005

_HELD = "migration_assets.writelock"


def lock_paths(database: str) -> tuple[Path, Path]:
    """The lock itself, and the queue: writers waiting for the lock hold a shared lock on it."""
    return Path(f"{database}.writelock"), Path(f"{database}.writequeue")


def acquire(info: dict[str, Any], database: str, *, wait_seconds: float | None = None) -> None:
    """Take the write lock of ``database`` for the connection whose ``info`` dict this is
    (re-entrant: a connection that holds it keeps it).

    Fair enough to prevent starvation: a writer that finds others queued joins the queue and
    lets them go first (they poll every millisecond; it starts after ``COURTESY`` seconds).
    """
    if fcntl is None or info.get(_HELD) is not None:
        return
    lock_file, queue_file = lock_paths(database)
    try:
        handle = open(lock_file, "a+b")  # noqa: SIM115 - held until the transaction ends
    except OSError as exc:  # a folder we may not write in: SQLite's busy handler alone
        log.debug("no write queue for %s: %s", database, exc)
        return
    try:
        queue = open(queue_file, "a+b")  # noqa: SIM115
    except OSError as exc:
        handle.close()
        log.debug("no write queue for %s: %s", database, exc)
        return
    with queue:
        try:
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody queued?
            fcntl.flock(queue, fcntl.LOCK_UN)
            if _try(handle):
                info[_HELD] = handle
                return
            queued_before_us = False
        except BlockingIOError:
            queued_before_us = True
        fcntl.flock(queue, fcntl.LOCK_SH)  # queue up
        if queued_before_us:
            time.sleep(COURTESY)
        wait = WAIT_SECONDS if wait_seconds is None else wait_seconds
        deadline = time.monotonic() + wait
        log.debug("waiting for another write transaction on %s", database)
        while not _try(handle):
            if time.monotonic() >= deadline:
                handle.close()
                message = f"database is locked: another connection held the write lock of {database} for over {wait:.0f} s"
                raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(message))
            time.sleep(POLL)
    info[_HELD] = handle  # leaving the queue (closing it) on the way out


def _try(handle: IO[bytes]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def release(info: dict[str, Any]) -> None:
    """Give the write lock back (a no-op when this connection does not hold it)."""
    handle: IO[bytes] | None = info.pop(_HELD, None)
    if handle is not None:
        handle.close()  # closing the descriptor drops the flock
