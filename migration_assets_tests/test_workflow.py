"""The spec's "Complete Migration Workflow", command by command, through the real entry point on a
corpus of the shared generator; each command's --json document, its errors, its progress, and a
status read while a migration runs in another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migration_assets_tests.conftest import make_corpus

COMMANDS = ["analyze", "validate", "migrate", "status", "history", "stats", "search", "check-incremental", "rollback", "cleanup", "export", "import"]


def run(*args: str, home: Path, url: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, its instance in ``home`` and its target ``url`` (``env``: more variables)."""
    variables = {**os.environ, **(env or {}), "DAGSTER_HOME": str(home), "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "migration_assets.cli", *args], env=variables, capture_output=True, text=True, timeout=300, cwd=cwd)


def document(done: subprocess.CompletedProcess[str]) -> dict:
    """The one JSON document a --json command prints on stdout."""
    assert done.stdout.count("\n") == 1, done.stdout
    return json.loads(done.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return folder


def test_the_complete_migration_workflow_of_the_spec(small_corpus, tmp_path, home, target_url):
    legacy, backups = str(small_corpus.root), str(tmp_path / "backups")
    # 1. analyze
    done = run("analyze", "--source", legacy, "--output", str(tmp_path / "analysis.json"), home=home, url=target_url)
    assert done.returncode == 0, done.stderr
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["totals"]["files"] == len(small_corpus.files)
    assert analysis["totals"]["skipped"] == sum(f["expect"] == "skip" for f in small_corpus.files.values())
    expected = small_corpus.expected_records()
    assert 0.7 * expected <= analysis["totals"]["records_estimate"] <= 1.3 * expected  # an estimate, from a sample
    assert analysis["estimate"]["seconds_high"] > analysis["estimate"]["seconds_low"] > 0 and "estimate" in analysis["estimate"]["basis"]
    assert analysis["by_format"]["csv"]["encodings_in_sample"] and analysis["duplicates"]["groups"] >= 0
    # 2. validate
    done = run("validate", "--source", legacy, "--output", str(tmp_path / "validation.json"), home=home, url=target_url)
    assert done.returncode == 0 and json.loads((tmp_path / "validation.json").read_text())["totals"]["valid_records"] == expected
    # 3. dry run
    done = run("migrate", "--source", legacy, "--backup", backups, "--dry-run", "--verbose", home=home, url=target_url)
    assert done.returncode == 0 and "nothing was written to the target" in done.stdout, done.stderr
    # 4. the migration
    done = run("migrate", "--source", legacy, "--backup", backups, "--verbose", home=home, url=target_url)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {"Migration started", "Migration completed"} <= {e["message"] for e in events} and all(e.get("time") for e in events)
    # 5. check the results
    summary = (tmp_path / "backups" / "migration_summary.txt").read_text()
    status = document(run("status", "--json", home=home, url=target_url))
    assert status["success"] and status["data"]["status"] == "completed" and status["data"]["run_id"] in summary
    assert status["data"]["totals"]["records"]["inserted"] == expected and status["data"]["rollback_command"]
    stats = document(run("stats", "--json", home=home, url=target_url))["data"]
    assert stats["content_items"]["total"] == expected and stats["embeddings"]["total"] == stats["knowledge_items"]["items"] > 0
    history = document(run("history", "--json", "--source", legacy, home=home, url=target_url))["data"]
    assert [r["run_id"] for r in history["runs"]] == [status["data"]["run_id"]] and history["runs"][0]["mode"] == "full"
    # later, only new files
    (small_corpus.root.parent / "unused").mkdir(exist_ok=True)
    done = run("check-incremental", "--source", legacy, "--json", home=home, url=target_url)
    assert document(done)["data"]["counts"]["unchanged"] == len(small_corpus.files)
    done = run("migrate", "--source", legacy, "--backup", backups, "--incremental", home=home, url=target_url)
    assert done.returncode == 0 and "Nothing to migrate" in done.stdout
    # export, import into a fresh target, roll back and clean up there
    assert run("export", "--output", str(tmp_path / "export"), home=home, url=target_url).returncode == 0
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    imported = document(run("import", "--input", str(tmp_path / "export"), "--backup", backups, "--json", home=home, url=fresh))["data"]
    assert imported["counts"]["inserted"] == expected and imported["reversible"]
    planned = document(run("rollback", imported["run_id"], "--json", home=home, url=fresh))["data"]
    assert planned["applied"] is False and planned["runs"] == [imported["run_id"]]
    assert run("rollback", imported["run_id"], "--confirm", home=home, url=fresh).returncode == 0
    cleaned = document(run("cleanup", imported["run_id"], "--json", home=home, url=fresh))["data"]  # rolled back: no --confirm needed
    assert cleaned["removed"] and cleaned["paths"] and not any(Path(p).exists() for p in cleaned["paths"])
    assert document(run("stats", "--json", home=home, url=fresh))["data"]["content_items"]["total"] == 0


def test_cleanup_of_a_run_that_can_still_be_undone_needs_confirm_and_is_recorded(tmp_path, home, sqlite_url):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps({"id": "a", "title": "A", "content": "text"}))
    assert run("migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), home=home, url=sqlite_url).returncode == 0
    run_id = document(run("status", "--json", home=home, url=sqlite_url))["data"]["run_id"]
    planned = document(run("cleanup", run_id, "--json", home=home, url=sqlite_url))["data"]
    assert planned["removed"] is False and planned["reversible_before"] and all(Path(p).exists() for p in planned["paths"])
    assert run("cleanup", run_id, "--confirm", home=home, url=sqlite_url).returncode == 0
    status = document(run("status", run_id, "--json", home=home, url=sqlite_url))["data"]
    assert status["backup"]["state"] == "cleaned" and status["rollback_command"] is None
    refused = run("rollback", run_id, "--confirm", home=home, url=sqlite_url)
    assert refused.returncode == 1 and "backup removed by cleanup" in refused.stderr
    # a target that cannot record the cleanup keeps the run's files: record and files never disagree
    (source / "b.json").write_text(json.dumps({"id": "b", "title": "B", "content": "more text"}))
    assert run("migrate", "--source", str(source), "--backup", str(tmp_path / "bk2"), "--incremental", home=home, url=sqlite_url).returncode == 0
    second = document(run("status", "--json", home=home, url=sqlite_url))["data"]["run_id"]
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from migration_assets.cleanup import cleanup_run

    read_only = create_engine(f"sqlite:///file:{sqlite_url.removeprefix('sqlite:///')}?mode=ro&uri=true")
    with pytest.raises(OperationalError, match="readonly"):
        cleanup_run(read_only, second, confirm=True)
    read_only.dispose()
    failed = run("status", second, "--json", home=home, url=sqlite_url)
    assert document(failed)["data"]["rollback_command"]
    assert (tmp_path / "bk2" / "backups" / second).exists()  # still reversible, its journals still there
    assert document(run("stats", "--json", home=home, url=sqlite_url))["data"]["content_items"]["total"] == 2  # content untouched


def test_errors_are_one_line_with_exit_2_for_arguments_and_1_for_the_work(tmp_path, home, sqlite_url):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["migrate", "--source", str(tmp_path / "missing"), "--backup", str(tmp_path / "bk")], 2, "does not exist"),
        (["migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--batch-size", "zero"], 2, "'zero' is not a valid integer"),
        (["migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--max-workers", "0"], 2, "0 is not in the range"),
        (["migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--parallel", "--max-workers", "99999999"], 2, "is not in the range"),
        (["migrate", "--source", str(source), "--backup", str(source / "bk")], 2, "inside the source directory"),
        (["history", "--limit", "99999999999999999999"], 2, "is not in the range"),
        (["migrate", "--source", str(source), "--backup", str(a_file / "bk")], 1, "cannot be written"),
        (["analyze", "--source", str(source), "--output", str(a_file / "out.json")], 1, "cannot be written"),
        (["status", "no-such-run"], 2, "no-such-run is not in this target"),
        (["cleanup", "no-such-run"], 2, "no-such-run is not in this target"),
        (["migrate", "--source", str(source), "--backup", str(tmp_path / "bk"), "--database-url", "postgresql://x@127.0.0.1:1/db"], 1, "127.0.0.1"),
        (["stats", "--database-url", "nosuch://db"], 1, "cannot be used"),
        (["stats", "--database-url", "mysql://u@127.0.0.1/x"], 1, "mysql is not supported"),
        (["frobnicate"], 2, "No such command"),
    ]
    assert run("migrate", "--source", str(source), "--backup", str(tmp_path / "bk0"), home=home, url=sqlite_url).returncode == 0
    for args, code, why in cases:
        done = run(*args, home=home, url=sqlite_url)
        assert done.returncode == code and why in done.stderr and done.stderr.count("\n") == 1, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr
        as_json = run(*args, "--json", home=home, url=sqlite_url) if args[0] != "frobnicate" else done
        if as_json is not done:
            error = document(as_json)
            assert as_json.returncode == code and error["success"] is False and why in error["message"] and error["error"], (args, as_json.stdout)
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database file at all" * 100)
    quiet = run("stats", home=home, url=f"sqlite:///{corrupt}")
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and quiet.stderr.count("\n") == 1
    loud = run("stats", "--verbose", home=home, url=f"sqlite:///{corrupt}")
    assert loud.returncode == 1 and "Traceback" in loud.stderr
    loud_json = run("stats", "--verbose", "--json", home=home, url=f"sqlite:///{corrupt}")  # the traceback on stderr, the document all the same
    assert loud_json.returncode == 1 and "Traceback" in loud_json.stderr and document(loud_json)["error"] == "database_error"


def test_every_command_has_an_example_in_its_help(home, sqlite_url):
    for command in COMMANDS:
        done = run(command, "--help", home=home, url=sqlite_url)
        assert done.returncode == 0 and "Example" in done.stdout and "python -m migration_assets.cli " + command in done.stdout, command
    listed = run("--help", home=home, url=sqlite_url).stdout
    assert [line.split()[0] for line in listed.split("Commands:")[1].splitlines() if line.strip()] == COMMANDS


def test_progress_is_shown_as_plain_lines_off_a_terminal_and_not_at_all_with_quiet(small_corpus, tmp_path, home, sqlite_url):
    args = ("migrate", "--source", str(small_corpus.root), "--backup", str(tmp_path / "bk"), "--batch-size", "20")
    shown = run(*args, home=home, url=sqlite_url)
    assert shown.returncode == 0 and "migrate: " in shown.stderr and f"/{len(small_corpus.files)} files" in shown.stderr
    finished = [line for line in shown.stderr.splitlines() if line.startswith(f"migrate: {len(small_corpus.files)}/{len(small_corpus.files)} files")]
    assert len(finished) == 1, shown.stderr  # said once, not again every half second while the checks and report run
    quiet = run(*args, "--quiet", "--incremental", home=home, url=sqlite_url)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_status_follows_a_migration_running_in_another_process_and_ends_agreeing_with_its_report(tmp_path, home, target_url):
    corpus = make_corpus(tmp_path / "c" / "legacy", 1200, seed=11)
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": target_url}
    command = [
        sys.executable,
        "-m",
        "migration_assets.cli",
        "migrate",
        "--source",
        str(corpus.root),
        "--backup",
        str(tmp_path / "bk"),
        "--batch-size",
        "10",
    ]
    migration = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    deadline = time.monotonic() + 240
    while migration.poll() is None and time.monotonic() < deadline:
        done = run("status", "--json", home=home, url=target_url)
        if done.returncode == 0:
            data = document(done)["data"]
            if data["status"] == "running" and data["progress"] and data["progress"].get("files_done"):
                seen.append(data["progress"])
        time.sleep(0.3)
    out, err = migration.communicate(timeout=300)
    assert migration.returncode == 0, err
    assert seen, "no status showed the run going"
    first = seen[0]
    assert first["files"] == len(corpus.files) and 0 < first["files_done"] <= first["files"] and "percent" in first
    assert first["peak_rss_mb"] > 0 and {"inserted", "rejected"} <= set(first)
    assert any("eta_seconds" in p and "files_per_second" in p for p in seen)
    final = document(run("status", "--json", home=home, url=target_url))["data"]
    report = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    assert final["status"] == "completed" and final["run_id"] == report["run_id"]
    assert final["totals"] == report["totals"] and final["progress"]["files_done"] == final["progress"]["files"]


def test_stats_group_rejections_by_kind_and_count_refused_files_and_a_rollback_keeps_the_finish_time(tmp_path, home, sqlite_url):
    """Reasons that differ only in quoted values and numbers are one kind; files refused whole
    (not parsed) are counted beside the records; a rolled-back run keeps when it finished."""
    first, second = tmp_path / "first", tmp_path / "second"
    for source in (first, second):
        source.mkdir()
        for n in range(5):
            (source / f"doc-{n}.json").write_text(json.dumps({"id": f"doc-{n}", "title": f"Doc {n}", "content": "text " * 20}))
    (first / "broken.json").write_text("{not json")
    (first / "empty.md").write_text("")
    assert run("migrate", "--source", str(first), "--backup", str(tmp_path / "b1"), home=home, url=sqlite_url).returncode == 0
    assert run("migrate", "--source", str(second), "--backup", str(tmp_path / "b2"), home=home, url=sqlite_url).returncode == 0  # same ids
    rejections = document(run("stats", "--json", home=home, url=sqlite_url))["data"]["rejections"]
    assert rejections["total"] == 5 and len(rejections["by_reason"]) == 1, rejections  # five ids already migrated: one kind
    assert rejections["files"]["total"] == 2 and len(rejections["files"]["by_reason"]) == 2, rejections
    shown = run("stats", home=home, url=sqlite_url).stdout
    assert "Rejected files: 2" in shown and max(len(line) for line in shown.splitlines()) < 400
    latest = document(run("status", "--json", home=home, url=sqlite_url))["data"]
    assert run("rollback", latest["run_id"], "--confirm", home=home, url=sqlite_url).returncode == 0
    into_source = run("export", "--output", str(first / "export"), home=home, url=sqlite_url)  # it would be migrated next time
    assert into_source.returncode == 1 and "a source this target migrates" in into_source.stderr and not (first / "export").exists()
    undone = document(run("status", latest["run_id"], "--json", home=home, url=sqlite_url))["data"]
    assert undone["status"] == "rolled_back" and undone["finished_at"] == latest["finished_at"] and undone["rolled_back_at"] > latest["finished_at"]
