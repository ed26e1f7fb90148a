"""The CLI as a user runs it: a real process, a real Dagster home, a real target database."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from sqlalchemy import func, select

from migration_assets.store.database import get_engine
from migration_assets.store.models import ContentItem


def run_cli(*args: str, home: Path, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    if url:
        env["DATABASE_URL"] = url
    return subprocess.run([sys.executable, "-m", "migration_assets.cli", *args], env=env, capture_output=True, text=True, timeout=300)


def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def test_migrate_writes_the_report_and_the_run_shows_in_the_dagster_history(small_corpus, tmp_path, target_url):
    home = dagster_home(tmp_path)
    backup = tmp_path / "backup"
    done = run_cli("migrate", "--source", str(small_corpus.root), "--backup", str(backup), "--batch-size", "40", home=home, url=target_url)
    assert done.returncode == 0, done.stderr
    report = json.loads((backup / "migration_report.json").read_text())
    assert report["status"] == "completed" and report["config"]["batch_size"] == 40
    assert len(report["files"]) == len(small_corpus.files)
    assert f"Run {report['run_id']} completed" in done.stdout
    # the totals (counted by the database) agree with the report's files, and the CLI prints them
    totals = report["totals"]
    assert totals["migrated"] == sum(f["status"] == "migrated" for f in report["files"]) > 0
    assert totals["records"]["found"] == sum(f["records"]["found"] for f in report["files"])
    assert f"{totals['files']} files ({totals['migrated']} migrated, {totals['skipped']} skipped" in done.stdout
    assert f"{totals['records']['found']} records ({totals['records']['inserted']} inserted" in done.stdout
    assert (backup / "migration_summary.txt").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(report["run_id"])
        assert run is not None and run.job_name == "migrate" and run.is_success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == small_corpus.expected_records()


def test_verbose_prints_the_summary_with_every_file_not_migrated(tmp_path, sqlite_url):
    source = tmp_path / "src"
    source.mkdir()
    (source / "good.txt").write_text("hello")
    (source / "broken.json").write_text("{oops")
    done = run_cli("migrate", "--source", str(source), "--backup", str(tmp_path / "b"), "--verbose", home=dagster_home(tmp_path), url=sqlite_url)
    assert done.returncode == 0, done.stderr
    assert "[rejected] broken.json: malformed JSON" in done.stdout


def test_bad_arguments_exit_2(tmp_path):
    home = dagster_home(tmp_path)
    assert run_cli("migrate", "--backup", str(tmp_path), home=home).returncode == 2
    missing = run_cli("migrate", "--source", str(tmp_path / "nope"), "--backup", str(tmp_path / "b"), home=home)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert run_cli("migrate", "--source", str(tmp_path), "--backup", str(tmp_path / "b"), "--batch-size", "0", home=home).returncode == 2


def test_a_failed_run_exits_1_with_the_error(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello")
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    done = run_cli("migrate", "--source", str(source), "--backup", str(tmp_path / "b"), home=dagster_home(tmp_path), url=unreachable)
    assert done.returncode == 1
    assert "failed" in done.stderr and "127.0.0.1" in done.stderr


def test_validate_names_every_invalid_file_and_writes_no_database(small_corpus, tmp_path):
    home = dagster_home(tmp_path)
    output = tmp_path / "validation.json"
    database = tmp_path / "never.db"
    done = run_cli("validate", "--source", str(small_corpus.root), "--output", str(output), "--verbose", home=home, url=f"sqlite:///{database}")
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    invalid = {f["path"]: f["reason"] for f in report["invalid_files"]}
    expected_invalid = {p for p, f in small_corpus.files.items() if f["expect"] == "invalid"}
    assert set(invalid) == expected_invalid and all(invalid.values())
    assert {f["path"] for f in report["skipped_files"]} == {p for p, f in small_corpus.files.items() if f["expect"] == "skip"}
    assert report["totals"]["valid_records"] == small_corpus.expected_records()
    assert set(report["by_format"]) >= {"json", "jsonl", "markdown", "text", "csv"}
    assert not database.exists()
    assert "[invalid file]" in done.stdout


def test_a_failed_run_still_leaves_a_report_of_where_it_stopped(tmp_path, sqlite_url):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello")
    backup = tmp_path / "b"
    backup.mkdir()
    (backup / "backups").write_text("a file where the backups folder must go")  # the writes cannot be journaled
    done = run_cli("migrate", "--source", str(source), "--backup", str(backup), home=dagster_home(tmp_path), url=sqlite_url)
    assert done.returncode == 1
    report = json.loads((backup / "migration_report.json").read_text())
    assert report["status"] == "failed" and report["stages"]["legacy_files"]["files"] == 1
