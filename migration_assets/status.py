"""What the target says about its runs and its content, as documents the CLI prints and the API
returns: one run's status (with its progress while it runs), the history of runs, and what the
target holds. Read from the tracking tables; plain Python, no Dagster."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import Engine, func, select

from migration_assets.documents import iso
from migration_assets.integrity import results_of_run
from migration_assets.reports import error_type, run_totals
from migration_assets.store.models import utcnow
from migration_assets.store.tables import CONTENT, CONTENT_VECTORS, EMBEDDINGS, ITEMS, KNOWLEDGE, REJECTED, RUNS, WARNINGS, WAVES


class UnknownRun(LookupError):
    """A run id the target does not know (or no run at all)."""


def _mode(conn: Any, run: Any) -> str:
    if run.id.startswith("import-"):
        return "import"
    keys = [k for k in (run.partition_key or "").split(",") if k]
    modes = sorted(set(conn.execute(select(WAVES.c.mode).where(WAVES.c.partition_key.in_(keys))).scalars())) if keys else []
    return ",".join(modes) or ("dry run" if run.dry_run else "unknown")


def known_run(engine: Engine, run_id: str | None) -> str:
    """``run_id`` when the target has that run (the latest run without one); ``UnknownRun`` otherwise."""
    if run_id is None:
        return latest_run_id(engine)
    with engine.connect() as conn:
        if conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            raise UnknownRun(f"run {run_id} is not in this target's migration_runs")
    return run_id


def latest_run_id(engine: Engine) -> str:
    with engine.connect() as conn:
        run_id = conn.execute(select(RUNS.c.id).where(RUNS.c.dry_run.is_(False)).order_by(RUNS.c.started_at.desc()).limit(1)).scalar()
    if run_id is None:
        raise UnknownRun("the target has no runs yet")
    return str(run_id)


def progress_of(stats: dict[str, Any], status: str, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """A run's progress as recorded by its last committed batch, with its rate and, while it
    runs, the time left at that rate (an estimate)."""
    progress = (stats or {}).get("progress")
    if not isinstance(progress, dict):
        return None
    shown = dict(progress)
    files, done = progress.get("files"), progress.get("files_done")
    if isinstance(files, int) and isinstance(done, int) and files:
        shown["percent"] = round(100 * done / files, 1)
    started = progress.get("started_at")
    if isinstance(started, str) and isinstance(done, int):
        reference = now or utcnow()
        if status != "running" and isinstance(progress.get("updated_at"), str):
            reference = dt.datetime.fromisoformat(progress["updated_at"])
        elapsed = (reference - dt.datetime.fromisoformat(started)).total_seconds()
        if elapsed > 0:
            rate = done / elapsed
            shown["files_per_second"] = round(rate, 1)
            shown["files_per_minute"] = round(rate * 60)
            if status == "running" and isinstance(files, int) and rate > 0:
                shown["eta_seconds"] = round((files - done) / rate, 1)
    return shown


def run_status(engine: Engine, run_id: str | None = None) -> dict[str, Any]:
    """One run (the latest when ``run_id`` is None): state, wave, progress while it runs, totals,
    check results and backup when it is done, and the command that undoes it."""
    run_id = run_id or latest_run_id(engine)
    with engine.connect() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
        if run is None:
            raise UnknownRun(f"run {run_id} is not in this target's migration_runs")
        totals = run_totals(conn, run_id)
        mode = _mode(conn, run)
    stats = run.stats or {}
    backup = stats.get("backup") or {}
    reversible = run.status in ("completed", "failed") and backup.get("state") == "sealed"
    return {
        "run_id": run.id,
        "status": run.status,
        "mode": mode,
        "source_directory": run.source_directory,
        "wave": run.partition_key,
        "group": group_summary(engine, run.run_group) if run.run_group else None,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "rolled_back_at": stats.get("rolled_back_at"),
        "error": run.error,
        "progress": progress_of(stats, run.status),
        "totals": totals,
        "peak_rss_mb": stats.get("peak_rss_mb")
        or (stats.get("ingest_records") or {}).get("peak_rss_mb")
        or (stats.get("progress") or {}).get("peak_rss_mb"),
        "integrity": results_of_run(engine, run_id),
        "backup": backup or None,
        "rules": {k: (run.rules or {}).get(k) for k in ("file", "hash")} if run.rules else None,
        "rollback_command": f"python -m migration_assets.cli rollback {run.id} --confirm" if reversible else None,
    }


def group_status(statuses: list[str]) -> str:
    """One state for runs that went together: running while one runs, failed when one failed
    (and was not undone), rolled back when all were, completed otherwise."""
    if "running" in statuses:
        return "running"
    if "failed" in statuses:
        return "failed"
    if statuses and all(status == "rolled_back" for status in statuses):
        return "rolled_back"
    return "completed" if statuses else "unknown"


def _add(total: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    return {key: _add(total.get(key) or {}, value) if isinstance(value, dict) else (total.get(key) or 0) + value for key, value in more.items()}


def group_summary(engine: Engine, group: str) -> dict[str, Any]:
    """The runs of one group (the waves of a ``migrate --waves K``, or a UI backfill): each
    run's wave, state and totals, the group's state, and its totals summed."""
    runs: list[dict[str, Any]] = []
    totals: dict[str, Any] = {}
    started, finished = [], []
    with engine.connect() as conn:
        for run in conn.execute(select(RUNS).where(RUNS.c.run_group == group).order_by(RUNS.c.started_at, RUNS.c.id)).all():
            counted = run_totals(conn, run.id)
            totals = _add(totals, counted)
            started.append(run.started_at)
            finished.append(run.finished_at)
            runs.append({"run_id": run.id, "wave": run.partition_key, "status": run.status, "files": counted["files"], "records": counted["records"]})
    status = group_status([run["status"] for run in runs])
    return {
        "group": group,
        "status": status,
        "started_at": iso(min(started)) if started else None,
        "finished_at": iso(max(finished)) if finished and status != "running" and all(finished) else None,
        "runs": runs,
        "totals": totals,
    }


def run_history(engine: Engine, *, limit: int = 20, source: str | None = None, group: str | None = None) -> dict[str, Any]:
    """The latest runs, newest first: when, source, mode, totals, state, rolled back or not, and
    the group each ran in (with ``group``: every run of that group, whatever ``limit``, and its
    summary beside; ``UnknownRun`` when no run is in it)."""
    query = select(RUNS).where(RUNS.c.dry_run.is_(False)).order_by(RUNS.c.started_at.desc())
    query = query.limit(limit) if group is None else query
    if source is not None:
        query = query.where(RUNS.c.source_directory == source)
    if group is not None:
        query = query.where(RUNS.c.run_group == group)
    runs = []
    with engine.connect() as conn:
        for run in conn.execute(query).all():
            totals = run_totals(conn, run.id)
            runs.append(
                {
                    "run_id": run.id,
                    "started_at": iso(run.started_at),
                    "finished_at": iso(run.finished_at),
                    "source_directory": run.source_directory,
                    "mode": _mode(conn, run),
                    "wave": run.partition_key,
                    "group": run.run_group,
                    "status": run.status,
                    "rolled_back": run.status == "rolled_back",
                    "files": totals["files"],
                    "records": totals["records"],
                }
            )
    summary = group_summary(engine, group) if group is not None else None
    if summary is not None and not summary["runs"]:
        raise UnknownRun(f"no run of this target is in group {group}")
    return {"runs": runs, "limit": limit, "source_directory": source, "group": summary}


def target_stats(engine: Engine) -> dict[str, Any]:
    """What the target holds: content by format, type and source; knowledge and embeddings;
    runs by state; rejections by reason and by rule."""
    with engine.connect() as conn:

        def grouped(column: Any, table: Any = CONTENT) -> dict[str, int]:
            rows = conn.execute(select(column, func.count()).select_from(table).group_by(column).order_by(func.count().desc())).all()
            return {str(key) if key is not None else "(none)": int(count) for key, count in rows}

        content = {
            "total": conn.execute(select(func.count()).select_from(CONTENT)).scalar_one(),
            "by_format": grouped(CONTENT.c.source_format),
            "by_type": grouped(CONTENT.c.content_type),
            "by_source": grouped(CONTENT.c.source_root),
        }
        knowledge = {
            "items": conn.execute(select(func.count()).select_from(KNOWLEDGE)).scalar_one(),
            "content_items_with_knowledge": conn.execute(select(func.count(func.distinct(KNOWLEDGE.c.content_item_id)))).scalar_one(),
        }
        embeddings = {
            "total": conn.execute(select(func.count()).select_from(EMBEDDINGS)).scalar_one(),
            "by_model": grouped(EMBEDDINGS.c.model, EMBEDDINGS),
            "short_items_by_model": grouped(CONTENT_VECTORS.c.model, CONTENT_VECTORS),  # vectors of items too short for chunks
        }
        runs = grouped(RUNS.c.status, RUNS)
        reasons: Counter[str] = Counter()
        rejected_rules: Counter[str] = Counter()
        for reason, rules in conn.execute(select(REJECTED.c.reason, REJECTED.c.rules)):
            reasons[error_type(reason)] += 1
            rejected_rules.update(set(rules or ()))
        # files refused whole (not parsed, no record found), as the latest run of each file left them
        latest = (
            select(func.max(ITEMS.c.id).label("id"))
            .select_from(ITEMS.join(RUNS, RUNS.c.id == ITEMS.c.run_id))
            .where(RUNS.c.dry_run.is_(False), RUNS.c.status != "rolled_back")
            .group_by(RUNS.c.source_directory, ITEMS.c.source_path)
            .subquery()
        )
        refused_files = select(ITEMS.c.reason).join(latest, latest.c.id == ITEMS.c.id).where(ITEMS.c.status == "rejected", ITEMS.c.records_found == 0)
        files = Counter(error_type(reason or "no reason recorded") for (reason,) in conn.execute(refused_files))
        warned_rules: Counter[str] = Counter()
        for (rules,) in conn.execute(select(WARNINGS.c.rules)):
            warned_rules.update(set(rules or ()))
    return {
        "content_items": content,
        "knowledge_items": knowledge,
        "embeddings": embeddings,
        "runs": runs,
        "rejections": {
            "total": sum(reasons.values()),
            "by_reason": dict(reasons.most_common()),
            "by_rule": dict(rejected_rules.most_common()),
            "files": {"total": sum(files.values()), "by_reason": dict(files.most_common())},
        },
        "warnings": {"by_rule": dict(warned_rules.most_common())},
    }


def progress_event(document: dict[str, Any]) -> dict[str, Any]:
    """A run's status as one live progress event (the spec's metrics): percent, files done of
    all, records that succeeded and failed, files/minute, the writer's peak memory."""
    progress = document.get("progress") or {}
    succeeded = sum(int(progress.get(key) or 0) for key in ("inserted", "updated", "unchanged"))
    return {
        "event": "progress",
        "migration_id": document["run_id"],
        "status": document["status"],
        "stage": progress.get("stage", "starting"),
        "percent": progress.get("percent", 0.0),
        "files_done": progress.get("files_done", 0),
        "files_total": progress.get("files"),
        "records_succeeded": succeeded,
        "records_failed": int(progress.get("rejected") or 0),
        "files_per_minute": progress.get("files_per_minute"),
        "eta_seconds": progress.get("eta_seconds"),
        "memory_mb": progress.get("peak_rss_mb"),
    }


def final_event(document: dict[str, Any]) -> dict[str, Any]:
    """The last event of a run that has ended: its state and totals, its checks, how to undo it."""
    return {
        "event": "finished",
        "migration_id": document["run_id"],
        "status": document["status"],
        "error": document["error"],
        "totals": document["totals"],
        "integrity": [{"check": c["check"], "passed": c["passed"]} for c in document["integrity"]],
        "memory_mb": document["peak_rss_mb"],
        "rollback_command": document["rollback_command"],
    }
