"""Batches written one after another, or several at once, each over a connection of its own.

SQLite has one writer, so its batches go one by one in the caller's thread. PostgreSQL
writes batches side by side: each in its own transaction, on a thread and a pooled connection
of its own, holding only the locks of the files it writes (``share_writes``), so the server
works on several batches while the next ones are parsed. Results are handed back in the order
the batches were submitted, in the caller's thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class BatchWriters(Generic[T]):
    """Up to ``count`` writes in flight; ``submit`` waits for the oldest when all are busy."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="batch-writer") if self.count > 1 else None
        self._in_flight: deque[tuple[Future[T], Callable[[T], Any], frozenset[str]]] = deque()

    def submit(self, write: Callable[[], T], done: Callable[[T], Any], keys: frozenset[str] = frozenset()) -> None:
        """Run ``write()``; ``done`` gets its result in this thread. A failed write raises here
        (or from a later ``submit`` or the end of the ``with`` block). A write whose ``keys`` (the
        legacy ids it writes) meet those of a write still in flight waits for it to end first: the
        earlier batch's record is the one a run keeps, whatever the timing."""
        if self._pool is None:
            done(write())
            return
        while self._in_flight and (len(self._in_flight) >= self.count or any(keys & held for _, _, held in self._in_flight)):
            self._finish_oldest()
        self._in_flight.append((self._pool.submit(write), done, keys))

    def _finish_oldest(self) -> None:
        future, done, _ = self._in_flight.popleft()
        done(future.result())

    def __enter__(self) -> BatchWriters[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        try:
            if kind is None:
                while self._in_flight:
                    self._finish_oldest()
        finally:
            if self._pool is not None:
                # after a failure the writes still running end in their own commit or rollback
                self._pool.shutdown(wait=True, cancel_futures=True)
