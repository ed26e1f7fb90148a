"""How a process uses memory: the figure every stage and worker reports, and the pacing of
Python's garbage collector for work that allocates millions of short-lived objects."""

from __future__ import annotations

import gc
import resource
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (50_000, 50, 1000)
"""Collector thresholds for bulk work: a young collection every 50,000 allocations instead of
700, and a full one rarely. Records, rows and their fields hold no reference cycles, so their
memory goes back as they are dropped; the collector only has cycles left to find."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


WORKER_THRESHOLDS = (10_000, 50, 1000)
"""A parse worker's: it builds pandas frames for the schema checks, whose reference cycles only
the collector frees, so it collects five times as often (its peak memory a third lower)."""


def pace_collector() -> None:
    """Set the collector's thresholds for a parse worker (its start)."""
    gc.set_threshold(*WORKER_THRESHOLDS)


@contextmanager
def bulk_allocation() -> Iterator[None]:
    """Pace the collector for a stretch of bulk work and restore it after.

    By default CPython scans young objects every 700 allocations and, now and then, every object
    alive: with a run's imports, Dagster's state and the batches in flight, that cost a migration
    a fifth of its time. Objects alive at the start are frozen out of the scans (which also
    spares forked workers from copying pages the scans would touch), and the scans are rarer."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
