"""The ``migration_runs`` ledger: where each run is, and how it ended."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, Subquery, func, select, update

from migration_assets.processes import process_identity
from migration_assets.store.models import utcnow
from migration_assets.store.tables import ITEMS, RUNS


def start_run(
    engine: Engine,
    run_id: str,
    *,
    source_directory: str,
    config: dict[str, Any],
    partition_key: str | None = None,
    group: str | None = None,
    pid: int | None = None,
) -> None:
    """Record that ``run_id`` has started in this process, or in the process ``pid`` on this host
    (idempotent: a re-executed run starts again); ``group``: the waves it runs with
    (``migrate --waves``, a backfill)."""
    with engine.begin() as conn:
        known = conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first()
        values = {
            "status": "running",
            "source_directory": source_directory,
            "partition_key": partition_key,
            "run_group": group,
            "dry_run": bool(config.get("dry_run")),
            "config": config,
            "error": None,
            "finished_at": None,
            "process": process_identity(pid),
        }
        if known:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(values))
        else:
            conn.execute(RUNS.insert().values(id=run_id, stats={}, started_at=utcnow(), **values))


def finish_run(engine: Engine, run_id: str, status: str, *, stats: dict[str, Any] | None = None, error: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if stats is not None:
        values["stats"] = stats
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(values))


def update_stats(engine: Engine, run_id: str, **stats: Any) -> None:
    """Merge ``stats`` into the run's stats (each stage adds its own figures)."""
    with engine.begin() as conn:
        current = conn.execute(select(RUNS.c.stats).where(RUNS.c.id == run_id)).scalar_one_or_none() or {}
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(stats={**current, **stats}))


def mark_failed(engine: Engine, run_id: str, error: str) -> bool:
    """Mark a run that is still ``running`` as failed; returns whether there was such a run."""
    with engine.begin() as conn:
        result = conn.execute(
            update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == "running").values(status="failed", error=error[:4000], finished_at=utcnow())
        )
        return bool(result.rowcount)


def record_rules(conn: Connection, run_id: str, rules: dict[str, Any]) -> None:
    """Within the run's first write: the rules it runs under (file and hashes), so that the next
    incremental run knows which files to re-evaluate when they change."""
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(rules=rules))


def record_progress(conn: Connection, run_id: str, stage: str, *, added: dict[str, int], fixed: dict[str, Any], start: bool = False) -> None:
    """Within a batch's transaction: add the batch's counts (``added``: batches and files done,
    records written) to how far the run got, and set the rest (``fixed``: the stage's totals, its
    start), so that ``status`` shows a run as it goes and a killed run's row says where it stopped.

    Batches of one run written at once add theirs in turn: the run's row stays locked to the
    commit (a lock that leaves the rows referring to it alone), so no count is lost. ``start``:
    the stage's first write, which sets the counts instead of adding to them."""
    query = select(RUNS.c.stats).where(RUNS.c.id == run_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    current = conn.execute(query).scalar_one_or_none()
    if current is None:
        return
    before = current.get("progress") or {}
    if start or before.get("stage") != stage:
        before = {}  # a stage that starts (again, after a retry of its step) counts from nothing
    progress = {**before, **fixed, "stage": stage}
    for key, count in added.items():
        progress[key] = before.get(key, 0) + count
    progress["peak_rss_mb"] = max(before.get("peak_rss_mb") or 0, fixed.get("peak_rss_mb") or 0)
    progress["updated_at"] = utcnow().isoformat()
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(stats={**current, "progress": progress}))


def latest_items(source_root: str) -> Subquery:
    """Ids of the latest ``migration_items`` row of every file of ``source_root``, from runs
    that count (not dry, not rolled back): what the target is believed to hold for each file."""
    return (
        select(func.max(ITEMS.c.id).label("id"))
        .select_from(ITEMS.join(RUNS, RUNS.c.id == ITEMS.c.run_id))
        .where(RUNS.c.source_directory == source_root, RUNS.c.dry_run.is_(False), RUNS.c.status != "rolled_back")
        .group_by(ITEMS.c.source_path)
        .subquery()
    )
