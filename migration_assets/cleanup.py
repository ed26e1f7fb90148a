"""Removing what a run left in its backup directory (journals, rollback files, staging) once it is
no longer needed: when the run can no longer be rolled back, or when the user says so. The
target's content is never touched; ``migration_runs`` records that the backup is gone.
Plain Python, no Dagster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from migration_assets.backup import ROLLBACK_FILE, note_backup, run_backup_dir
from migration_assets.staging import STAGING_FOLDER
from migration_assets.store.models import utcnow
from migration_assets.store.tables import BACKUPS, RUNS


class CleanupRefused(ValueError):
    """A run whose files are still in use (it is running)."""


def _latest_copy_of(backup: Path, run_id: str) -> Path | None:
    """The backup directory's latest ``rollback_info.json``, when it is this run's."""
    latest = backup / ROLLBACK_FILE
    try:
        return latest if json.loads(latest.read_text()).get("run_id") == run_id else None
    except (OSError, ValueError, AttributeError):
        return None


def cleanup_run(engine: Engine, run_id: str, *, confirm: bool) -> dict[str, Any]:
    """Remove ``run_id``'s backup files and staging. A run that can still be rolled back is
    cleaned only with ``confirm`` (and cannot be rolled back after); one that cannot (rolled
    back, or never reversible) is cleaned at once. Returns what was (or would be) removed."""
    with engine.connect() as conn:
        run = conn.execute(select(RUNS.c.status, RUNS.c.config, RUNS.c.stats).where(RUNS.c.id == run_id)).one()
        recorded = [Path(p) for p in conn.execute(select(BACKUPS.c.path).where(BACKUPS.c.run_id == run_id)).scalars()]
    if run.status == "running":
        raise CleanupRefused(f"run {run_id} is still running; clean it up once it has ended")
    backup = Path((run.config or {}).get("backup_directory") or ".")
    candidates = [run_backup_dir(backup, run_id), backup / STAGING_FOLDER / run_id, _latest_copy_of(backup, run_id), *recorded]
    paths = sorted({str(p) for p in candidates if p is not None and p.exists()})
    state = ((run.stats or {}).get("backup") or {}).get("state")
    reversible = run.status in ("completed", "failed") and state == "sealed"
    document: dict[str, Any] = {"run_id": run_id, "paths": paths, "reversible_before": reversible, "removed": False}
    if not paths:
        document["message"] = f"Nothing to clean up for run {run_id}"
        return document
    if reversible and not confirm:
        document["message"] = f"Run {run_id} can still be rolled back: cleaning up its {len(paths)} backup paths ends that (add --confirm)"
        return document
    # recorded first: a target that cannot take the record (read-only, gone) keeps the files, and
    # the run stays as reversible as it was; files that will not go after it are only left over
    with engine.begin() as conn:
        conn.execute(BACKUPS.delete().where(BACKUPS.c.run_id == run_id))
        note_backup(conn, run_id, "cleaned", f"backup removed by cleanup at {utcnow().isoformat()}; the run can no longer be rolled back")
    for path in map(Path, paths):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink(missing_ok=True)
    document.update(removed=True, message=f"Removed {len(paths)} backup paths of run {run_id}; its content stays")
    return document
