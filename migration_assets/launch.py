"""Starting a migration in the background: the run gets its id and its ``migration_runs`` row at
once (so ``status`` knows it from the first moment), then a process of its own plans the wave
and materializes it as an ordinary run of the Dagster ``migrate`` job, with that id, on the
instance in ``DAGSTER_HOME`` (it shows in the UI, tagged with who started it). The caller (the
REST API) answers without waiting. Plain Python, no Dagster in the caller.

Whatever happens to the process, the row ends: a failure before the Dagster run starts is
recorded by the process; a process that is killed is closed as failed by the next command
that looks (``lifecycle.recover_stale_runs``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from typing import Any

from sqlalchemy import select, update

from migration_assets.config import MigrationConfig
from migration_assets.lifecycle import recover_stale_runs
from migration_assets.processes import process_identity
from migration_assets.store.database import get_engine
from migration_assets.store.runs import mark_failed, start_run
from migration_assets.store.tables import RUNS

LAUNCH_LOGS = "launches"
_STARTING = threading.Lock()


class AlreadyRunning(RuntimeError):
    """A migration of the same source into the same target is running."""

    def __init__(self, run_id: str, source: str) -> None:
        super().__init__(f"a migration of {source} is already running: run {run_id}; follow it, or start again once it has ended")
        self.run_id = run_id


def start_migration(config: MigrationConfig, database_url: str, *, tags: dict[str, str] | None = None) -> str:
    """Record a new run and launch it in a process of its own; returns its id at once.
    ``AlreadyRunning`` when a migration of the same source is running in this target."""
    engine = get_engine(database_url)
    recover_stale_runs(engine, database_url)
    source = str(config.source_path)
    run_id = str(uuid.uuid4())
    with _STARTING:  # two requests at once: the second sees the first's row
        with engine.connect() as conn:
            running = conn.execute(select(RUNS.c.id).where(RUNS.c.status == "running", RUNS.c.source_directory == source)).scalar()
        if running is not None:
            raise AlreadyRunning(running, source)
        start_run(engine, run_id, source_directory=source, config=config.model_dump())  # owned by this process until the launch
    payload = {"run_id": run_id, "config": config.model_dump(), "database_url": database_url, "tags": tags or {}}
    try:
        logs = config.backup_path / LAUNCH_LOGS
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{run_id}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "migration_assets.launch"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal to the server is not one to its runs
                env=os.environ.copy(),
            )
        assert process.stdin is not None
        process.stdin.write(json.dumps(payload).encode())
        process.stdin.close()
    except BaseException as exc:  # not launched: the row must not stay running under this live process
        mark_failed(engine, run_id, f"the migration could not be launched: {exc}")
        raise
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(process=process_identity(process.pid)))
    # reaped when it ends: an unreaped child stays a zombie, which would look alive
    threading.Thread(target=process.wait, name=f"reap-{run_id}", daemon=True).start()
    return run_id


def _run(payload: dict[str, Any]) -> int:
    """The launched process: the wave planned and run under the id it was given."""
    from migration_assets.lifecycle import close_run
    from migration_assets.runner import run_migration
    from migration_assets.store.runs import finish_run, update_stats

    run_id, url = payload["run_id"], payload["database_url"]
    config = MigrationConfig(**payload["config"])
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(process=process_identity()))
    try:
        outcome = run_migration(config, url, run_id=run_id, tags=payload.get("tags") or None, log_level="INFO")
    except BaseException as exc:
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        close_run(
            engine,
            run_id,
            status="failed",
            error=error,
            database_url=url,
            backup_directory=config.backup_path,
            create_backups=config.create_backups,
            report=False,
        )
        raise
    if outcome is None:
        update_stats(engine, run_id, nothing_to_do=f"no new, changed or drifted files under {config.source_path}")
        finish_run(engine, run_id, "completed")
        return 0
    return 0 if outcome.success else 1


def main() -> None:
    sys.exit(_run(json.loads(sys.stdin.read())))


if __name__ == "__main__":
    main()
