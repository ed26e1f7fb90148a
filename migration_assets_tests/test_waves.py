"""Concurrent waves: ``migrate --waves K`` plans K waves and runs them at once as Dagster runs
through the instance's run queue; a backfill of several partitions from the UI groups its runs
the same way. Each wave keeps its report and checks; the group has a summary."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
from dagster import DagsterEventType
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from migration_assets.config import MigrationConfig
from migration_assets.runner import run_migration
from migration_assets.status import group_summary, run_status
from migration_assets.store.database import get_engine, readonly_engine
from migration_assets.store.tables import CONTENT, RUNS, WAVES
from migration_assets.waves import plan_waves
from migration_assets_tests.test_instance_postgres import REPO, deployed_home
from migration_assets_tests.test_pipeline import materialize
from migration_assets_tests.test_reliability import content_state
from migration_assets_tests.test_workflow import document, run


def test_two_waves_run_at_once_through_the_run_queue_on_postgresql_storage(
    tmp_path, monkeypatch, instance_db, postgres_url, sqlite_url, instance, small_corpus
):
    source = small_corpus.root
    reference = run_migration(MigrationConfig(source_directory=str(source), backup_directory=str(tmp_path / "ref-bk")), sqlite_url, instance=instance)
    assert reference is not None and reference.success
    home = deployed_home(tmp_path)  # deploy/postgres/dagster.yaml: the run queue and its tag limits
    env = {"DAGSTER_POSTGRES_URL": instance_db}
    migrate = ("migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--waves", "2", "--json")
    done = run(*migrate, home=home, url=postgres_url, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    group = document(done)["data"]
    assert group["status"] == "completed" and len(group["run_ids"]) == len(group["waves"]) == 2 and group["daemon_started"] is True
    # the target is as after one run of all files
    assert content_state(postgres_url) == content_state(sqlite_url)
    assert group["totals"]["files"] == len(small_corpus.files) == sum(run["files"] for run in group["runs"])
    assert all(run["files"] > 0 for run in group["runs"])  # the files were shared out
    # two Dagster runs, queued then launched by the daemon, at the same time
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", instance_db)
    with dg.DagsterInstance.from_config(str(home)) as dagster:
        records = [dagster.get_run_record_by_id(run_id) for run_id in group["run_ids"]]
        for record in records:
            assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
            assert record.dagster_run.tags["migration/group"] == group["group"] and record.dagster_run.tags["dagster/partition"] in group["waves"]
            assert dagster.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.RUN_ENQUEUED), "not through the queue"
        (a, b) = records
        assert a.start_time < b.end_time and b.start_time < a.end_time, "the two waves did not run at once"
    # each wave has its own report and checks; status and history show the group
    for run_id in group["run_ids"]:
        assert (tmp_path / "bk" / "reports" / run_id / "migration_report.json").is_file()
        wave = run_status(get_engine(postgres_url), run_id)
        assert wave["group"]["group"] == group["group"] and wave["integrity"] and all(check["passed"] for check in wave["integrity"])
    history = document(run("history", "--group", group["group"], "--json", home=home, url=postgres_url))["data"]
    assert sorted(r["run_id"] for r in history["runs"]) == sorted(group["run_ids"]) and history["group"]["totals"] == group["totals"]
    unknown = run("history", "--group", "no-such-group", "--json", home=home, url=postgres_url)
    assert unknown.returncode == 2 and document(unknown)["error"] == "unknown_run"
    # again, incrementally: nothing to do, nothing queued
    again = run(*migrate, "--incremental", home=home, url=postgres_url, env=env)
    assert again.returncode == 0 and document(again)["data"]["status"] == "nothing_to_do", again.stderr


def test_a_backfills_runs_are_one_group_and_removed_files_belong_to_its_first_wave(tmp_path, sqlite_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        (source / f"note-{i}.txt").write_text(f"Note number {i} of the wave test, with enough words to be a record.")
    assert materialize(source, tmp_path / "bk", sqlite_url, instance).success
    (source / "note-0.txt").unlink()
    for i in range(5, 10):
        (source / f"note-{i}.txt").write_text(f"Note number {i}, written after the first run.")
    engine = get_engine(sqlite_url)
    config = MigrationConfig(source_directory=str(source), backup_directory=str(tmp_path / "bk"), incremental=True, prune_removed=True)
    waves = plan_waves(engine, config, count=3)
    assert [w.file_count for w in waves] == [2, 2, 1] and sorted(f for w in waves for f in w.files) == [f"note-{i}.txt" for i in range(5, 10)]
    assert waves[0].removed == ["note-0.txt"] and waves[1].removed == waves[2].removed == []  # pruned and reported once
    assert waves[0].unchanged_count == 4 and waves[1].unchanged_count == waves[2].unchanged_count == 0
    # the runs a UI backfill launches carry its id: one group
    for wave in waves:
        backfill = {"dagster/backfill": "bf-1"}
        result = materialize(
            source, tmp_path / "bk", sqlite_url, instance, key=wave.partition_key, incremental=True, prune_removed=True, tags=backfill
        )
        assert result is not None and result.success
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RUNS).where(RUNS.c.run_group == "bf-1")).scalar_one() == 3
        assert set(conn.execute(select(WAVES.c.status).where(WAVES.c.partition_key.in_([w.partition_key for w in waves]))).scalars()) == {"completed"}
        assert sorted(conn.execute(select(CONTENT.c.source_path)).scalars()) == [f"note-{i}.txt" for i in range(1, 10)]
    summary = group_summary(engine, "bf-1")
    assert summary["status"] == "completed" and len(summary["runs"]) == 3
    assert summary["totals"]["files"] == 5 and summary["totals"]["removed"] == 1 and summary["totals"]["records"]["inserted"] == 5


def test_waves_ending_together_each_write_the_latest_report_whole(tmp_path, sqlite_url, instance):
    """Every run also copies its report beside the backup folder as the latest: runs ending at
    once each write it through a file of their own, so none fails and none is torn."""
    from migration_assets.reports import write_report

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("A note long enough to be migrated as a record of its own.")
    result = materialize(source, tmp_path / "bk", sqlite_url, instance)
    assert result is not None and result.success
    report = json.loads((tmp_path / "bk" / "reports" / result.run_id / "migration_report.json").read_text())
    report["files"] = report["files"] * 2000  # large enough for the writes to overlap
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def finish(n: int) -> None:
        try:
            start.wait()
            for _ in range(4):
                write_report({**report, "run_id": f"run-{n}"}, tmp_path / "bk")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    latest = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    assert latest["run_id"] in {f"run-{n}" for n in range(6)} and len(latest["files"]) == len(report["files"])
    assert f"Migration run {latest['run_id']}" in (tmp_path / "bk" / "migration_summary.txt").read_text()
    assert not list((tmp_path / "bk").glob(".*.tmp"))


def test_a_wave_whose_run_process_is_killed_ends_failed_and_the_rest_goes_on(tmp_path, sqlite_url, instance, small_corpus):
    """``kill -9`` of one wave's run process (the OOM killer's way): that wave ends failed with
    the reason, in the target (its ledger row closed) and in the instance; the other wave
    completes, and the next run completes the work."""
    source = small_corpus.root
    reference = run_migration(MigrationConfig(source_directory=str(source), backup_directory=str(tmp_path / "ref-bk")), sqlite_url, instance=instance)
    assert reference is not None and reference.success
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the local instance: SQLite, its run queue
    target = f"sqlite:///{tmp_path / 'waves.db'}"
    variables = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": target}
    migrate = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--json"]
    waves = subprocess.Popen([*migrate, "--waves", "2"], env=variables, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and waves.poll() is None and time.monotonic() < deadline:
        engine = readonly_engine(target)  # creates nothing: the CLI does
        with contextlib.suppress(SQLAlchemyError), engine.connect() as conn:  # the schema may not be there yet
            killed = conn.execute(select(RUNS.c.id, RUNS.c.process).where(RUNS.c.status == "running").limit(1)).first()
        engine.dispose()
        time.sleep(0.05)
    assert killed is not None, "no wave's run was seen running"
    os.kill(killed.process["pid"], signal.SIGKILL)
    out, err = waves.communicate(timeout=240)
    assert waves.returncode == 1, out + err
    group = json.loads(out)["details"]  # the error document holds the group
    assert group["status"] == "failed" and killed.id in group["run_ids"]
    assert "is gone: killed or crashed" in json.loads(out)["message"]
    others = [run_id for run_id in group["run_ids"] if run_id != killed.id]
    assert all(run["status"] == "completed" for run in group["runs"] if run["run_id"] in others)
    with get_engine(target).connect() as conn:
        status, error = conn.execute(select(RUNS.c.status, RUNS.c.error).where(RUNS.c.id == killed.id)).one()
    assert status == "failed" and "is gone: killed or crashed" in error
    with dg.DagsterInstance.from_config(str(home)) as dagster:
        run = dagster.get_run_by_id(killed.id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE  # the UI says so too
    # the next run does what the killed one left: the target as after one run of all files
    again = subprocess.run([*migrate, "--incremental"], env=variables, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert content_state(target) == content_state(sqlite_url)


def test_waves_whose_steps_run_in_processes_of_their_own_are_not_taken_for_killed(tmp_path):
    """Under the multiprocess executor (``MIGRATION_EXECUTOR=multiprocess``) every step is a
    process that ends before the run does: the run's ledger names the run's own process, so the
    wait (which fails a run whose process is gone) lets the later steps run."""
    source = tmp_path / "src"
    source.mkdir()
    for i in range(12):
        (source / f"note-{i:02}.md").write_text(f"---\ntitle: Note {i}\n---\nNote {i} of a source migrated step by step, in a process per step.\n")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    target = f"sqlite:///{tmp_path / 'waves.db'}"
    variables = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": target, "MIGRATION_EXECUTOR": "multiprocess"}
    migrate = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--json"]
    done = subprocess.run([*migrate, "--waves", "2"], env=variables, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    group = json.loads(done.stdout)["data"]
    assert group["status"] == "completed" and group["totals"]["records"]["inserted"] == 12
    with dg.DagsterInstance.from_config(str(home)) as dagster:
        for run_id in group["run_ids"]:
            steps = dagster.all_logs(run_id, of_type=DagsterEventType.STEP_START)
            pids = {record.dagster_event.pid for record in steps if record.dagster_event}
            assert len(pids) == len(steps) > 1, "the steps did not run in processes of their own"
    with get_engine(target).connect() as conn:
        assert set(conn.execute(select(RUNS.c.status).where(RUNS.c.id.in_(group["run_ids"]))).scalars()) == {"completed"}
