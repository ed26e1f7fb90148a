"""Concurrent waves: a source split into K waves, each an ordinary run of the ``migrate`` job
submitted to the Dagster instance's run queue, all tagged with the group they belong to.

The queue decides how many go at once (``run_queue`` in the instance's dagster.yaml:
``max_concurrent_runs``, and the tag limits of ``deploy/postgres/dagster.yaml``), and the
instance's run launcher starts them: a process each with the default launcher, a container or a
Kubernetes job in a deployment. The daemon dequeues them; when none is running for the instance,
the caller (the CLI) runs one for as long as its runs take (``daemon_for``), so that
``migrate --waves K`` works on a machine with nothing else running.

Each run is a run of the same job the UI launches (a backfill of several partitions from the UI
is the same thing: its runs are grouped by their backfill id). The report and checks stay per
wave; ``status.group_summary`` sums them up.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

LOCATION = "migration_assets"  # the code location's name here, in workspace.yaml and in deploy/
JOB = "migrate"
DAEMON_LOG = "daemon.log"


class QueueUnavailable(RuntimeError):
    """The runs cannot go through the instance's run queue; the message says why and what to do."""


def workspace_file(home: Path) -> Path:
    """The workspace of the runs the CLI queues, ``$DAGSTER_HOME/workspace.yaml`` (written when
    missing): the code location ``migration_assets``, as the project's workspace.yaml names it, so
    a daemon started with either launches them."""
    path = home / "workspace.yaml"
    if not path.exists():
        path.write_text(
            "# written by migration_assets: the code location of the runs `migrate --waves` queues\n"
            "load_from:\n"
            "  - python_module:\n"
            "      module_name: migration_assets.definitions\n"
            "      attribute: defs\n"
            f"      location_name: {LOCATION}\n",
            encoding="utf-8",
        )
    return path


def daemon_running(instance: dg.DagsterInstance) -> bool:
    """Whether a ``dagster-daemon`` dequeues this instance's runs: its last heartbeat (one every
    30 s) is less than 90 s old. A daemon started here wipes its heartbeats when it stops."""
    from dagster._daemon.controller import get_daemon_statuses

    kind = "QUEUED_RUN_COORDINATOR"
    try:
        return bool(get_daemon_statuses(instance, [kind], ignore_errors=True, heartbeat_tolerance_seconds=60)[kind].healthy)
    except Exception:  # noqa: BLE001 - no heartbeat table, no heartbeat: none is running
        return False


class Daemon:
    """The daemon that dequeues the runs: the instance's own while its heartbeat says it runs;
    otherwise a ``dagster-daemon run`` over ``workspace`` started here (its log in ``logs``),
    for as long as the runs take. ``env``: its environment, so its runs'."""

    CHECK_EVERY = 10.0  # seconds between looks at the heartbeat of a daemon not started here

    def __init__(self, instance: dg.DagsterInstance, workspace: Path, logs: Path, env: Mapping[str, str]) -> None:
        self.instance, self.workspace, self.env = instance, workspace, dict(env)
        self.log = logs / DAEMON_LOG
        self.process: subprocess.Popen[bytes] | None = None
        self.started_here = False
        self._checked = 0.0

    def ensure(self) -> None:
        """A daemon dequeues: the one started here is alive (``QueueUnavailable`` if it exited),
        or the instance's has a fresh heartbeat, or one is started now."""
        if self.process is not None:
            if self.process.poll() is not None:
                lines = self.log.read_text(errors="replace").strip().splitlines()[-1:] if self.log.exists() else []
                raise QueueUnavailable(
                    f"the dagster-daemon started for these runs exited ({self.process.returncode}): {' '.join(lines)} (log: {self.log})"
                )
            return
        if time.monotonic() - self._checked < self.CHECK_EVERY:
            return
        self._checked = time.monotonic()
        if not daemon_running(self.instance):
            self._start()

    def _start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        executable = Path(sys.executable).with_name("dagster-daemon")
        command = [str(executable) if executable.exists() else "dagster-daemon", "run", "-w", str(self.workspace)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started_here = True

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # its runs have ended: the caller waited for them
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(Exception):  # its heartbeat would say for 90 s more that a daemon runs
            self.instance.wipe_daemon_heartbeats()


@contextlib.contextmanager
def daemon_for(instance: dg.DagsterInstance, workspace: Path, logs: Path, env: Mapping[str, str]) -> Iterator[Daemon]:
    """A daemon for the runs of this block (see ``Daemon``), stopped at its end if started here."""
    daemon = Daemon(instance, workspace, logs, env)
    daemon.ensure()
    try:
        yield daemon
    finally:
        daemon.stop()


def submit_runs(
    instance: dg.DagsterInstance,
    workspace: Path,
    partition_keys: Sequence[str],
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
    submitted: list[str] | None = None,
) -> list[str]:
    """Create a run of the ``migrate`` job for each wave (partition) and submit it to the run
    queue, as ``dagster job launch`` does; returns their ids in the order of the waves (each
    also appended to ``submitted`` as soon as it is queued)."""
    from dagster._cli.job import _create_run
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from migration_assets.defs.partitions import WAVES

    new = [key for key in partition_keys if not instance.has_dynamic_partition(WAVES, key)]
    if new:
        instance.add_dynamic_partitions(WAVES, new)
    run_ids = submitted if submitted is not None else []
    target = WorkspaceFileTarget(paths=[str(workspace)])
    with WorkspaceProcessContext(instance, target, code_server_log_level="ERROR") as process_context:
        request = process_context.create_request_context()
        error = request.get_code_location_error(LOCATION)
        if error is not None or not request.has_code_location(LOCATION):
            why = error.message.strip().splitlines()[-1] if error else f"it names no code location {LOCATION!r}"
            raise QueueUnavailable(f"the code location in {workspace} cannot be loaded: {why}")
        location = request.get_code_location(LOCATION)
        (repository,) = location.get_repositories().values()
        job = repository.get_full_job(JOB)
        for key in partition_keys:
            run = _create_run(
                instance=instance,
                code_location=location,
                remote_repo=repository,
                remote_job=job,
                run_config=dict(run_config),
                tags={**tags, "dagster/partition": key},
                op_selection=None,
                run_id=None,
            )
            run_ids.append(run.run_id)  # known before it is queued: an interrupt cancels it too
            instance.submit_run(run.run_id, request)
    return run_ids


@dataclass
class QueuedRuns:
    """How the runs of a group ended, by their Dagster status (SUCCESS, FAILURE, CANCELED)."""

    run_ids: list[str]
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(self.statuses.get(run_id) == "SUCCESS" for run_id in self.run_ids)


def wait_for_runs(
    instance: dg.DagsterInstance,
    run_ids: Sequence[str],
    daemon: Daemon,
    on_tick: Callable[[dict[str, str]], None] | None = None,
    gone: Callable[[Sequence[str]], Mapping[str, str]] | None = None,
) -> QueuedRuns:
    """Wait until every run has ended (``on_tick`` hears their statuses each second); the
    first failing step's error of each failed run. ``gone`` names the runs whose process has
    died, and why: that is their error, and a run still STARTED is reported failed to the
    instance (the code server that launched it does so too, in general words, but only while it
    lives itself: a run of a daemon killed with it would stay STARTED for ever)."""
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    from migration_assets.runner import step_error

    outcome = QueuedRuns(list(run_ids))
    lost: dict[str, str] = {}  # the runs reported failed here, and why
    while True:
        runs = instance.get_runs(filters=RunsFilter(run_ids=list(run_ids)))
        outcome.statuses = {run_id: "DELETED" for run_id in run_ids}  # a run deleted in the UI has ended
        outcome.statuses.update({run.run_id: run.status.value for run in runs})
        if on_tick:
            on_tick(dict(outcome.statuses))
        if all(run.is_finished for run in runs):
            break
        started = [run.run_id for run in runs if run.status == DagsterRunStatus.STARTED]
        for run_id, why in (gone(started) if gone and started else {}).items():
            run = instance.get_run_by_id(run_id)
            if run is not None and run.status == DagsterRunStatus.STARTED:
                instance.report_run_failed(run, f"the run's process ended without a word: {why}")
                lost[run_id] = why
        daemon.ensure()
        time.sleep(1)
    unexplained = [run_id for run_id, status in outcome.statuses.items() if status != "SUCCESS" and run_id not in lost]
    if gone and unexplained:  # failed by the code server that saw its child die, in Dagster's general words
        lost.update(gone(unexplained))
    for run_id, status in outcome.statuses.items():
        if status == "DELETED":
            outcome.errors[run_id] = "its Dagster run was deleted before it ended"
        elif run_id in lost:
            outcome.errors[run_id] = lost[run_id]
        elif status != "SUCCESS":
            records = instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE})
            events = [record.dagster_event for record in records if record.dagster_event is not None]
            failure = next((event.message for event in events if event.event_type == DagsterEventType.RUN_FAILURE), None)
            outcome.errors[run_id] = step_error(events) or failure or f"run {status.lower()}"
    return outcome


def run_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a daemon started here, so of its runs: this process's, and ``extra``."""
    return {**os.environ, **extra}


def cancel_queued(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> list[str]:
    """Cancel the runs that have not started yet (the caller was interrupted: they would run
    later, unwatched); those already started go on. Returns the ids cancelled."""
    from dagster import DagsterRunStatus, RunsFilter

    waiting = instance.get_runs(filters=RunsFilter(run_ids=list(run_ids), statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]))
    cancelled = []
    for run in waiting:
        with contextlib.suppress(Exception):  # dequeued meanwhile: it goes on
            if run.status == DagsterRunStatus.NOT_STARTED:  # created, never queued
                instance.report_run_canceled(run, message="its migrate --waves was interrupted before it was queued")
                cancelled.append(run.run_id)
            elif instance.run_coordinator.cancel_run(run.run_id):
                cancelled.append(run.run_id)
    return cancelled
