"""The one way a run ends: its status, its backup sealed (or the run marked plainly not
reversible, and why), its waves, its report. Every path calls it: a run that completes, a run
that fails, a run whose process is gone, an import. Plain Python, no Dagster."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from migration_assets.processes import process_gone
from migration_assets.store.runs import finish_run, mark_failed
from migration_assets.store.tables import RUNS
from migration_assets.waves import finish_waves


@dataclass
class ClosedRun:
    run_id: str
    status: str
    report_path: Path | None = None
    summary_path: Path | None = None
    not_reversible: str | None = None  # why the run cannot be undone, when it cannot


def close_run(
    engine: Engine,
    run_id: str,
    *,
    status: str,
    database_url: str,
    backup_directory: Path,
    create_backups: bool = True,
    error: str | None = None,
    partition_keys: Sequence[str] = (),
    report: bool = True,
) -> ClosedRun:
    """End ``run_id`` as ``status`` ("completed" or "failed", with ``error``): seal its backup,
    or mark it not reversible; complete its waves (a failed one is marked failed: its files go back to the planner);
    write its report into ``backup_directory``. A failure is recorded whatever else goes wrong."""
    from migration_assets.backup import note_backup, seal_or_mark  # imported when a run is closed, not when none is stale

    closed = ClosedRun(run_id, status)
    if status == "completed":
        finish_run(engine, run_id, "completed")
    else:
        mark_failed(engine, run_id, error or "run failed")
    if create_backups:
        closed.not_reversible = seal_or_mark(engine, run_id, backup_directory, database_url)
    else:
        closed.not_reversible = "backups were off for it (create_backups=false)"
        with engine.begin() as conn:
            note_backup(conn, run_id, "not_reversible", closed.not_reversible)
    if status == "completed" and partition_keys:
        finish_waves(engine, partition_keys, run_id, "completed")
    elif status != "completed":
        # a failed wave gives its files back to the planner: what it did not migrate (or what was
        # edited since) goes into the next wave; re-running its partition still runs its files
        failed_waves = list(partition_keys) or _partition_keys_of(engine, run_id)
        if failed_waves:
            finish_waves(engine, failed_waves, run_id, "failed")
    if report:
        from migration_assets.reports import build_report, write_report  # the pipeline's weight: not for a run closed unreported

        try:
            closed.report_path, closed.summary_path = write_report(build_report(engine, run_id), backup_directory)
        except (OSError, SQLAlchemyError, LookupError):
            if status == "completed":
                raise
            # a failed run: where it stopped, and why, is in migration_runs whatever the disk says
    return closed


def _partition_keys_of(engine: Engine, run_id: str) -> list[str]:
    """The waves (partition keys) a run was given, as its ``migration_runs`` row records them."""
    with engine.connect() as conn:
        keys = conn.execute(select(RUNS.c.partition_key).where(RUNS.c.id == run_id)).scalar()
    return [key for key in (keys or "").split(",") if key]


def close_failed_run(engine: Engine, run_id: str, error: str, *, database_url: str) -> ClosedRun | None:
    """Close a run that failed where nobody closed it (a run launched from the UI, by a schedule
    or a sensor, whose failure the daemon sees): failed with ``error``, its backup sealed, its
    report written into the backup folder of its own config. None when the run has no row or
    was closed already (a CLI run closes itself)."""
    with engine.connect() as conn:
        row = conn.execute(select(RUNS.c.status, RUNS.c.config).where(RUNS.c.id == run_id)).first()
    if row is None or row.status != "running":
        return None
    config = row.config or {}
    return close_run(
        engine,
        run_id,
        status="failed",
        error=error,
        database_url=database_url,
        backup_directory=Path(config.get("backup_directory") or "."),
        create_backups=bool(config.get("create_backups", True)),
    )


def _gone(process: dict[str, Any]) -> str:
    return f"its process (pid {process['pid']} on {process['host']}) is gone: killed or crashed; what it committed is kept and can be undone"


def runs_without_process(engine: Engine, run_ids: Sequence[str]) -> dict[str, str]:
    """Of ``run_ids``, those still ``running`` here whose process is gone (killed by the OOM
    killer, ``kill -9``), with why."""
    if not run_ids:
        return {}
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(RUNS.c.id, RUNS.c.process).where(RUNS.c.id.in_(list(run_ids)), RUNS.c.status == "running")).all()
    except SQLAlchemyError:  # the target out of reach a moment: nothing is known to be gone
        return {}
    return {run_id: _gone(process) for run_id, process in rows if process_gone(process)}


def recover_stale_runs(engine: Engine, database_url: str) -> list[ClosedRun]:
    """Close every run still marked ``running`` whose process is gone (killed, crashed): failed,
    its committed writes sealed from its journal so that it can be undone. A run on another
    host, or whose process lives, is left alone."""
    with engine.connect() as conn:
        running = conn.execute(select(RUNS.c.id, RUNS.c.process, RUNS.c.config).where(RUNS.c.status == "running")).all()
    closed = []
    for run_id, process, config in running:
        if not process_gone(process):
            continue
        config = config or {}
        backup = Path(config.get("backup_directory") or ".")
        error = _gone(process)
        closed.append(
            close_run(
                engine,
                run_id,
                status="failed",
                database_url=database_url,
                backup_directory=backup,
                create_backups=config.get("create_backups", True) is not False,
                error=error,
                report=False,
            )
        )
    return closed
