"""Transient database faults (a dropped connection, a lock or serialization timeout, a
deadlock victim) are retried with exponential backoff, a bounded number of times; every
other fault (a read-only database, a full disk, bad data) fails at once with its message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

T = TypeVar("T")
log = logging.getLogger(__name__)

# PostgreSQL SQLSTATEs worth another attempt: serialization failure, deadlock, lock not
# available, lock/statement timeout, admin shutdown / crash shutdown / cannot connect now
TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"}
TRANSIENT_MESSAGES = ("database is locked", "database table is locked", "server closed the connection", "connection refused", "could not connect")
PERMANENT_MESSAGES = ("readonly database", "read-only", "disk is full", "no space left")


def is_transient(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    message = str(exc.orig if exc.orig is not None else exc).lower()
    if any(text in message for text in PERMANENT_MESSAGES):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if exc.connection_invalidated or (sqlstate and (sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08"))):
        return True
    return isinstance(exc, OperationalError) and any(text in message for text in TRANSIENT_MESSAGES)


def retry_transient(
    work: Callable[[], T], *, attempts: int = 5, base_delay: float = 0.2, on_retry: Callable[[int, BaseException], None] | None = None
) -> T:
    """``work()``, again after a transient fault (0.2 s, 0.4 s, 0.8 s, ... between attempts)."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DBAPIError as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            log.warning("transient database fault (attempt %d of %d), retrying: %s", attempt, attempts, str(exc).splitlines()[0])
            if on_retry:
                on_retry(attempt, exc)
            time.sleep(base_delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
