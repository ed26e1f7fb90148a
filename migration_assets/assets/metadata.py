"""Small helpers that turn stage figures into Dagster metadata values."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg

from migration_assets.memory import peak_rss_mb
from migration_assets.resources import TargetDatabase
from migration_assets.store.runs import update_stats


def counts_metadata(counts: Mapping[str, Any], prefix: str = "") -> dict[str, dg.MetadataValue]:
    return {f"{prefix}{key}": dg.MetadataValue.int(int(value)) for key, value in counts.items() if isinstance(value, int)}


def table_preview(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], limit: int = 10) -> dg.MetadataValue:
    """A markdown table of the first ``limit`` rows."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(str(row.get(c, "")).replace("|", "\\|").replace("\n", " ")[:80] for c in columns) + " |\n" for row in rows[:limit]
    )
    return dg.MetadataValue.md(head + body)


def progress(context: dg.AssetExecutionContext, label: str, steps: int = 10) -> Callable[[int, int], None]:
    """A progress callback that logs about ``steps`` times per stage (each log is an event)."""

    def report(done: int, total: int) -> None:
        if total and (done == total or done * steps // total != (done - 1) * steps // total):
            context.log.info(f"{label}: batch {done}/{total} ({100 * done // total}%)")

    return report


@contextmanager
def timed_stage(target: TargetDatabase, run_id: str, stage: str) -> Iterator[dict[str, Any]]:
    """Time a stage and merge its figures, with the process's peak memory so far, into the run's
    ``migration_runs.stats``."""
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    yield figures
    timing = {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": peak_rss_mb()}
    update_stats(target.engine(), run_id, **{stage: {**timing, **figures}})
