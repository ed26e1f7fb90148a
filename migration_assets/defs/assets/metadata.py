"""Small helpers that turn stage figures into Dagster metadata values."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import dagster as dg
from sqlalchemy import Engine, Table, func, select

from migration_assets.defs.resources import TargetDatabase
from migration_assets.memory import peak_rss_mb
from migration_assets.store.runs import update_stats
from migration_assets.store.tables import ITEMS


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


def table_rows(engine: Engine, run_id: str, table: Table) -> dict[str, dg.MetadataValue]:
    """``dagster/row_count`` (the table as it is now, whichever run wrote its rows) and the rows
    this run wrote."""
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        by_run = conn.execute(select(func.count()).select_from(table).where(table.c.run_id == run_id)).scalar_one()
    return {"dagster/row_count": dg.MetadataValue.int(int(total)), "written_by_this_run": dg.MetadataValue.int(int(by_run))}


def throughput(files: int, records: int, seconds: float) -> dict[str, dg.MetadataValue]:
    """Files and records per second of a stage, and its seconds."""
    seconds = max(seconds, 1e-6)
    return {
        "seconds": dg.MetadataValue.float(round(seconds, 3)),
        "files_per_second": dg.MetadataValue.float(round(files / seconds, 1)),
        "records_per_second": dg.MetadataValue.float(round(records / seconds, 1)),
    }


def files_not_migrated(engine: Engine, run_id: str, limit: int = 500) -> dict[str, dg.MetadataValue]:
    """This run's rejected and skipped files with their reasons, as a table (the first ``limit``;
    the report lists them all)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ITEMS.c.source_path, ITEMS.c.source_format, ITEMS.c.status, ITEMS.c.reason, ITEMS.c.records_rejected)
            .where(ITEMS.c.run_id == run_id, ITEMS.c.status.in_(("rejected", "skipped")))
            .order_by(ITEMS.c.status, ITEMS.c.source_path)
            .limit(limit + 1)
        ).all()
    records = [
        dg.TableRecord(
            {
                "file": r.source_path,
                "format": r.source_format,
                "status": r.status,
                "reason": r.reason or "",
                "records_rejected": int(r.records_rejected or 0),
            }
        )
        for r in rows[:limit]
    ]
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("file", "string"),
            dg.TableColumn("format", "string"),
            dg.TableColumn("status", "string", description="rejected or skipped"),
            dg.TableColumn("reason", "string"),
            dg.TableColumn("records_rejected", "int"),
        ]
    )
    shown: dict[str, dg.MetadataValue] = {"files_not_migrated": dg.MetadataValue.table(records, schema)}
    if len(rows) > limit:
        shown["files_not_migrated_note"] = dg.MetadataValue.text(f"the first {limit}; migration_report.json lists every file")
    return shown


@contextmanager
def timed_stage(target: TargetDatabase, run_id: str, stage: str) -> Iterator[dict[str, Any]]:
    """Time a stage and merge its figures, with the process's peak memory so far, into the run's
    ``migration_runs.stats``."""
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    yield figures
    timing = {"seconds": round(time.perf_counter() - started, 3), "peak_rss_mb": peak_rss_mb()}
    update_stats(target.engine(), run_id, **{stage: {**timing, **figures}})
