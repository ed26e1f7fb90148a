"""Launching the migration job on a Dagster instance, for the CLI and the API.

A launch from here is an ordinary run of the ``migrate`` job: it appears in the UI's run
history, with the same assets, checks and metadata as a launch from the UI.

Dagster and the pipeline's modules are imported only once there is a wave to run: an
incremental pass that finds nothing to do stays a second's work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from migration_assets.config import MigrationConfig
from migration_assets.store.database import get_engine
from migration_assets.waves import plan_waves

if TYPE_CHECKING:
    import dagster as dg
    from dagster._utils.error import SerializableErrorInfo

    from migration_assets.store.models import MigrationWave


def root_cause(error: SerializableErrorInfo) -> str:
    """The message of the innermost cause (Dagster wraps a step's exception in its own)."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def step_error(events: Sequence[dg.DagsterEvent]) -> str | None:
    """The first failing step's own error, ``"<step>: <innermost cause, first line>"`` (a
    run's failure event only says "Steps failed: [...]"); None when no step failed."""
    failures = [event for event in events if event.is_step_failure]
    if not failures:
        return None
    first = failures[0]
    if first.step_failure_data and first.step_failure_data.error:
        return f"{first.step_key}: {root_cause(first.step_failure_data.error).splitlines()[0]}"
    return first.message or f"{first.step_key} failed"


@dataclass
class LaunchResult:
    run_id: str
    success: bool
    report_path: Path
    summary_path: Path
    error: str | None = None


def ensure_dagster_home() -> Path:
    """``DAGSTER_HOME``; when unset, ``.dagster_home`` under the working directory (and set for
    this process and the processes it starts). A home without settings gets the project's
    ``dagster.yaml`` (the working directory's, else telemetry off): Dagster reads only
    ``$DAGSTER_HOME/dagster.yaml``, and warns at every start when there is none."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        project_settings = Path.cwd() / "dagster.yaml"
        settings.write_text(project_settings.read_text() if project_settings.exists() else "telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class InstanceUnavailable(RuntimeError):
    """The Dagster instance (its runs, event logs, schedules) cannot be opened or written; the
    message says so, in one line, and names its settings: it is not the target database."""


def default_instance() -> dg.DagsterInstance:
    """The instance in ``DAGSTER_HOME`` (see ``ensure_dagster_home``), its storage reached once
    now (a broken one fails here, named as the instance, not mid-run)."""
    import dagster as dg

    home = ensure_dagster_home()
    try:
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
    except Exception as exc:
        hint = ""
        if "Can't locate revision" in str(exc):  # Alembic found a version that is not Dagster's
            hint = " (its database keeps another application's schema version, the migration target's perhaps: give each its own database or schema)"
        raise InstanceUnavailable(f"the Dagster instance ({home / 'dagster.yaml'}) cannot be used: {_first_line(exc)}{hint}") from exc
    return instance


def from_instance_storage(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the Dagster instance's storage (not by the target)."""
    trace = exc.__traceback__
    while trace is not None:
        name = trace.tb_frame.f_globals.get("__name__", "")
        if name.startswith(("dagster_postgres", "dagster._core.storage", "dagster._core.instance")):
            return True
        trace = trace.tb_next
    return False


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``, and of the error under it when there is one (a retry's give-up
    message says little; the connection error under it says why)."""
    lines: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(lines) < 2:
        seen.add(id(exc))
        text = str(exc).strip().splitlines()
        lines.append(f"{type(exc).__name__}: {text[0] if text else ''}")
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return " ← ".join(lines)


def run_migration(
    config: MigrationConfig,
    database_url: str,
    *,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
    tags: dict[str, str] | None = None,
    on_planned: Callable[[str], None] | None = None,
    run_id: str | None = None,
    embedding_provider: str | None = None,
) -> LaunchResult | None:
    """Plan a wave of ``config``'s source (every file, or with ``incremental`` the new, changed
    and drifted ones) and materialize it into ``database_url``. Returns None when an
    incremental plan finds nothing to do; never raises for a failed run, returns it.
    ``on_planned`` hears the wave's partition key before its run starts (to watch its progress);
    ``run_id`` gives the run its id (one chosen before the launch, as the API's);
    ``embedding_provider`` the vectors' provider (default: ``$MIGRATION_EMBEDDING_PROVIDER``)."""
    from migration_assets.lifecycle import recover_stale_runs

    engine = get_engine(database_url)
    recover_stale_runs(engine, database_url)  # a killed run's waves are adopted below, its writes sealed
    waves = plan_waves(engine, config, adopt_pending=True)
    if not waves:
        return None
    if on_planned:
        on_planned(waves[0].partition_key)
    return run_wave(
        config,
        database_url,
        waves[0].partition_key,
        instance=instance,
        log_level=log_level,
        tags=tags,
        run_id=run_id,
        embedding_provider=embedding_provider,
    )


RUN_TARGET_VARIABLE = "MIGRATION_RUN_TARGET_URL"


def _url_config(url: str, *, by_value: bool = False) -> Any:
    """The target URL as run config that holds no password: the run (stored in the instance,
    shown in the UI) names the environment variable that holds it. ``by_value``: a URL without
    a password is given as it is (absolute, for SQLite), even when it is ``$DATABASE_URL``: the
    run may start in another process, with another environment and working directory."""
    from sqlalchemy.engine import make_url

    from migration_assets.store.database import normalise_url

    if by_value and make_url(url).password is None:
        return normalise_url(url, create_dirs=False) if make_url(url).get_backend_name() == "sqlite" else url
    if os.environ.get("DATABASE_URL") == url:
        return {"env": "DATABASE_URL"}
    if make_url(url).password is None:
        return url
    os.environ[RUN_TARGET_VARIABLE] = url  # this process runs the job (execute_in_process)
    return {"env": RUN_TARGET_VARIABLE}


def _run_config(
    config: MigrationConfig, database_url: str, embedding_provider: str | None, log_level: str, *, queued: bool = False
) -> dict[str, Any]:
    from migration_assets.config import embedding_provider_from_env

    return {
        "resources": {
            "migration": {"config": config.model_dump()},
            "target": {"config": {"url": _url_config(database_url, by_value=queued)}},
            "embedding_model": {"config": {"provider": embedding_provider or embedding_provider_from_env()}},
        },
        "loggers": {"console": {"config": {"log_level": log_level}}},
    }


def _run_tags(config: MigrationConfig, tags: dict[str, str] | None) -> dict[str, str]:
    return {
        "migration/source": str(config.source_path),
        "migration/mode": "incremental" if config.incremental else "full",
        "migration/launcher": "cli",
        **(tags or {}),  # the API's say who launched it
    }


def run_wave(
    config: MigrationConfig,
    database_url: str,
    partition_key: str,
    *,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
    embedding_provider: str | None = None,
) -> LaunchResult:
    """Materialize one wave (partition) of the migration assets as a run of the ``migrate`` job."""
    from migration_assets.definitions import defs
    from migration_assets.defs.partitions import WAVES
    from migration_assets.lifecycle import close_run
    from migration_assets.reports import REPORT_FILE, SUMMARY_FILE, run_report_dir

    instance = instance or default_instance()
    if not instance.has_dynamic_partition(WAVES, partition_key):
        instance.add_dynamic_partitions(WAVES, [partition_key])
    job = defs.resolve_job_def("migrate")
    run_config = _run_config(config, database_url, embedding_provider, log_level)
    tags = _run_tags(config, tags)
    result = job.execute_in_process(
        run_config=run_config, instance=instance, partition_key=partition_key, raise_on_error=False, tags=tags, run_id=run_id
    )
    error = None
    if not result.success:
        error = step_error(result.all_events) or "run failed"
        # the target itself may be why the run failed; the error is reported either way
        with contextlib.suppress(SQLAlchemyError, LookupError, OSError):
            close_run(
                get_engine(database_url),
                result.run_id,
                status="failed",
                error=error or "run failed",
                database_url=database_url,
                backup_directory=config.backup_path,
                create_backups=config.create_backups,
            )
    reports = run_report_dir(config.backup_path, result.run_id)  # the run's own (the latest is copied beside the folder)
    return LaunchResult(result.run_id, result.success, reports / REPORT_FILE, reports / SUMMARY_FILE, error)


@dataclass
class GroupResult:
    """The runs of the waves of one ``run_waves``: ids in the order of the waves, and how they ended."""

    group: str
    run_ids: list[str]
    waves: list[str]
    success: bool
    errors: dict[str, str]
    daemon_started: bool


def new_group_key() -> str:
    from migration_assets.waves import new_wave_key

    return new_wave_key("group")


def run_waves(
    config: MigrationConfig,
    database_url: str,
    count: int,
    *,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
    tags: dict[str, str] | None = None,
    embedding_provider: str | None = None,
    on_planned: Callable[[str, list[MigrationWave]], None] | None = None,
    on_tick: Callable[[dict[str, str]], None] | None = None,
) -> GroupResult | None:
    """Plan the source's work as ``count`` waves of about equal size and run them as concurrent
    runs of the ``migrate`` job through the instance's run queue (``run_queue``); returns when
    all have ended (None when an incremental plan finds nothing to do). ``on_planned`` hears the
    group's key and its waves before the runs are queued; ``on_tick`` their Dagster statuses."""
    from migration_assets.defs.assets import GROUP_TAG
    from migration_assets.lifecycle import close_failed_run, recover_stale_runs, runs_without_process
    from migration_assets.run_queue import (
        QueueUnavailable,
        cancel_queued,
        daemon_for,
        daemon_running,
        run_environment,
        submit_runs,
        wait_for_runs,
        workspace_file,
    )

    instance = instance or default_instance()
    engine = get_engine(database_url)
    recover_stale_runs(engine, database_url)
    run_config = _run_config(config, database_url, embedding_provider, log_level, queued=True)
    if run_config["resources"]["target"]["config"]["url"] == {"env": RUN_TARGET_VARIABLE} and daemon_running(instance):
        raise QueueUnavailable(
            "the target URL holds a password, and the runs are launched by the instance's daemon, which reads it from its own "
            "environment: export DATABASE_URL with this URL for the daemon and for this command"
        )
    waves = plan_waves(engine, config, count=count, adopt_pending=True)
    if not waves:
        return None
    group, keys = new_group_key(), [wave.partition_key for wave in waves]
    if on_planned:
        on_planned(group, waves)
    home = ensure_dagster_home()
    run_ids: list[str] = []
    with daemon_for(instance, workspace_file(home), config.backup_path / "launches", run_environment({})) as daemon:
        try:
            submit_runs(instance, workspace_file(home), keys, run_config, _run_tags(config, {GROUP_TAG: group, **(tags or {})}), run_ids)
            outcome = wait_for_runs(instance, run_ids, daemon, on_tick, gone=lambda started: runs_without_process(engine, started))
        except BaseException:  # interrupted, or the daemon died: no run starts later unwatched
            daemon.stop()  # first: it would dequeue what is being cancelled
            cancel_queued(instance, run_ids)
            raise
    for run_id, error in outcome.errors.items():  # closed with its step's error, unless it closed itself
        with contextlib.suppress(SQLAlchemyError, LookupError, OSError):
            close_failed_run(engine, run_id, error, database_url=database_url)
    return GroupResult(group, run_ids, keys, outcome.success, outcome.errors, daemon.started_here)
