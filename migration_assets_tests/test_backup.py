"""Backups, exact rollback, dry run, reports, export and import."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from migration_assets.backup import KEY_ENV, BackupError
from migration_assets.config import MigrationConfig
from migration_assets.rollback import rollback
from migration_assets.service import dry_run
from migration_assets.store.database import get_engine
from migration_assets.transfer import ExportError, export_content, import_content
from migration_assets_tests.test_pipeline import materialize

CONTENT_TABLES = ["content_items", "legacy_mappings", "knowledge_items", "embeddings"]


def snapshot(url: str) -> dict[str, list[tuple]]:
    with get_engine(url).connect() as conn:
        return {table: conn.execute(text(f"select * from {table} order by 1")).all() for table in CONTENT_TABLES}


def rows(state: dict[str, list[tuple]]) -> dict[str, int]:
    return {table: len(found) for table, found in state.items()}


def write_source(root: Path) -> Path:
    root.mkdir()
    long = "Backups make every migration reversible, row for row. " * 30
    (root / "a.json").write_text(json.dumps([{"id": f"a{i}", "title": f"A{i}", "content": f"{long} {i}"} for i in range(4)]))
    (root / "b.md").write_text(f"---\ntitle: B\n---\n{long}")
    (root / "gone.txt").write_text("this file will be removed " * 40)
    return root


def change_source(root: Path) -> None:
    records = json.loads((root / "a.json").read_text())
    records[1]["content"] = "Rewritten content, long enough to be knowledge. " * 30
    records[2]["title"] = "A2, retitled"
    (root / "a.json").write_text(json.dumps(records))
    (root / "c.jsonl").write_text(json.dumps({"id": "c1", "title": "New", "content": "fresh " * 200}) + "\n")


def test_rolling_back_the_second_run_restores_the_first_and_the_first_restores_empty(tmp_path, target_url, instance):
    source = write_source(tmp_path / "src")
    backup = tmp_path / "bk"
    first = materialize(source, backup, target_url, instance)
    after_first = snapshot(target_url)
    first_info = backup / "backups" / first.run_id / "rollback_info.json"
    change_source(source)
    (source / "gone.txt").unlink()
    second = materialize(source, backup, target_url, instance, incremental=True, prune_removed=True)
    assert first.success and second.success
    after_second = snapshot(target_url)
    assert after_second != after_first
    engine = get_engine(target_url)
    plan = rollback(engine, backup / "rollback_info.json", target_url, confirm=True)
    assert plan.applied and plan.runs == [second.run_id]
    assert snapshot(target_url) == after_first
    rollback(engine, first_info, target_url, confirm=True)
    assert rows(snapshot(target_url)) == dict.fromkeys(CONTENT_TABLES, 0)
    with engine.connect() as conn:
        statuses = set(conn.execute(text("select status from migration_runs")).scalars())
    assert statuses == {"rolled_back"}


def test_after_a_rollback_an_incremental_run_migrates_the_undone_changes_again(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    materialize(source, tmp_path / "bk", sqlite_url, instance)
    change_source(source)
    materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True)
    after_second = snapshot(sqlite_url)
    rollback(get_engine(sqlite_url), tmp_path / "bk" / "rollback_info.json", sqlite_url, confirm=True)
    again = materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True)
    assert again.success
    restored = snapshot(sqlite_url)
    assert [r[1:4] for r in restored["content_items"]] == [r[1:4] for r in after_second["content_items"]]


def test_a_run_that_later_runs_built_on_is_refused_unless_cascaded(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    first = materialize(source, tmp_path / "bk", sqlite_url, instance)
    change_source(source)
    second = materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True)
    first_info = tmp_path / "bk" / "backups" / first.run_id / "rollback_info.json"
    with pytest.raises(BackupError, match=f"runs built on run {first.run_id}: {second.run_id}; roll those back first"):
        rollback(get_engine(sqlite_url), first_info, sqlite_url, confirm=True)
    plan = rollback(get_engine(sqlite_url), first_info, sqlite_url, confirm=True, cascade=True)
    assert plan.runs == [second.run_id, first.run_id]
    assert rows(snapshot(sqlite_url)) == dict.fromkeys(CONTENT_TABLES, 0)


def test_a_backup_that_fails_its_checksum_refuses_to_restore(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    run = materialize(source, tmp_path / "bk", sqlite_url, instance)
    journal = tmp_path / "bk" / "backups" / run.run_id / "content.journal"
    journal.write_bytes(journal.read_bytes().replace(b'"a1"', b'"a9"'))
    before = snapshot(sqlite_url)
    with pytest.raises(BackupError, match="fails its checksum"):
        rollback(get_engine(sqlite_url), tmp_path / "bk" / "rollback_info.json", sqlite_url, confirm=True)
    assert snapshot(sqlite_url) == before


def test_a_backup_of_another_database_is_refused(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    materialize(source, tmp_path / "bk", sqlite_url, instance)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(BackupError, match="not of"):
        rollback(get_engine(other), tmp_path / "bk" / "rollback_info.json", other, confirm=True)


def test_encrypted_backups_hide_the_content_and_need_the_key(tmp_path, sqlite_url, instance, monkeypatch):
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    source = tmp_path / "src"
    source.mkdir()
    (source / "secret.json").write_text(json.dumps({"id": "s1", "title": "T", "content": "original secret words"}))
    materialize(source, tmp_path / "bk", sqlite_url, instance)
    (source / "secret.json").write_text(json.dumps({"id": "s1", "title": "T", "content": "replacement words"}))
    run = materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True)
    journal = tmp_path / "bk" / "backups" / run.run_id / "content.journal"
    assert b"original secret words" not in journal.read_bytes()
    info = json.loads((tmp_path / "bk" / "rollback_info.json").read_text())
    assert info["encrypted"] is True
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(BackupError, match="encrypted"):
        rollback(get_engine(sqlite_url), tmp_path / "bk" / "rollback_info.json", sqlite_url, confirm=True)
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(BackupError, match="cannot be decrypted"):
        rollback(get_engine(sqlite_url), tmp_path / "bk" / "rollback_info.json", sqlite_url, confirm=True)


def test_encrypted_backups_restore_with_the_key(tmp_path, sqlite_url, instance, monkeypatch):
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    source = write_source(tmp_path / "src")
    materialize(source, tmp_path / "bk", sqlite_url, instance)
    after_first = snapshot(sqlite_url)
    change_source(source)
    materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True)
    rollback(get_engine(sqlite_url), tmp_path / "bk" / "rollback_info.json", sqlite_url, confirm=True)
    assert snapshot(sqlite_url) == after_first


def test_the_rollback_command_changes_nothing_without_confirm(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    materialize(source, tmp_path / "bk", sqlite_url, instance)
    before = snapshot(sqlite_url)
    env = {**os.environ, "DATABASE_URL": sqlite_url, "DAGSTER_HOME": str(instance.root_directory)}
    command = [sys.executable, "-m", "migration_assets.cli", "rollback", "--rollback-file", str(tmp_path / "bk" / "rollback_info.json")]
    shown = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "Would roll back run" in shown.stdout and "Add --confirm" in shown.stdout
    assert snapshot(sqlite_url) == before
    done = subprocess.run([*command, "--confirm"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Rolled back run" in done.stdout
    assert rows(snapshot(sqlite_url)) == dict.fromkeys(CONTENT_TABLES, 0)


def test_a_dry_run_writes_nothing_and_predicts_the_real_run(small_corpus, tmp_path, target_url, instance):
    source = tmp_path / "src"
    shutil.copytree(small_corpus.root, source)
    materialize(source, tmp_path / "bk", target_url, instance)
    change_source_like = sorted(p for p, f in small_corpus.files.items() if f["expect"] == "valid" and f["format"] == "json" and f["records"] == 1)[
        :2
    ]
    for path in change_source_like:
        record = json.loads((source / path).read_text())
        record["content"] += " (edited)"
        (source / path).write_text(json.dumps(record))
    (source / "added.jsonl").write_text(json.dumps({"id": "added-1", "title": "Added"}) + "\n" + "{broken\n")
    with get_engine(target_url).connect() as conn:
        before = {
            t: conn.execute(text(f"select * from {t} order by 1")).all()
            for t in [*CONTENT_TABLES, "migration_runs", "migration_items", "migration_waves"]
        }
    config = MigrationConfig(source_directory=str(source), backup_directory=str(tmp_path / "bk"), incremental=True)
    planned = dry_run(config, target_url)
    with get_engine(target_url).connect() as conn:
        after = {t: conn.execute(text(f"select * from {t} order by 1")).all() for t in before}
    assert after == before
    assert planned["plan"] == {"insert": 1, "update": 2, "unchanged": 0, "reject": 1, "prune": 0}
    real = materialize(source, tmp_path / "bk", target_url, instance, incremental=True)
    report = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    assert real.success
    assert report["totals"]["records"] == planned["totals"]["records"]
    assert {f["path"]: f["status"] for f in report["files"]} == {f["path"]: f["status"] for f in planned["files"]}


def test_a_dry_run_against_a_database_that_does_not_exist_yet_creates_nothing(small_corpus, tmp_path):
    target = tmp_path / "not-yet.db"
    config = MigrationConfig(source_directory=str(small_corpus.root), backup_directory=str(tmp_path / "bk"))
    planned = dry_run(config, f"sqlite:///{target}")
    assert planned["plan"]["insert"] == small_corpus.expected_records()
    assert not target.exists()


def test_the_report_carries_backup_integrity_timings_throughput_memory_and_error_types(small_corpus, tmp_path, sqlite_url, instance):
    materialize(small_corpus.root, tmp_path / "bk", sqlite_url, instance)
    report = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    assert Path(report["backup"]["rollback_file"]).exists() and report["backup"]["files"]
    assert len(report["integrity"]) == 5
    assert report["stages"]["ingest_records"]["seconds"] > 0 and report["stages"]["peak_rss_mb"] > 0
    assert report["throughput"]["files_per_minute"] > 0
    assert report["errors_by_type"].get("malformed JSON", 0) >= 1
    summary = (tmp_path / "bk" / "migration_summary.txt").read_text()
    assert "rollback --rollback-file" in summary and "Errors by type" in summary and "Peak memory" in summary


def test_export_then_import_round_trips_the_content(small_corpus, tmp_path, target_url, instance):
    materialize(small_corpus.root, tmp_path / "bk", target_url, instance)
    manifest = export_content(get_engine(target_url), tmp_path / "export", target_url)
    assert manifest["files"][0]["rows"] == small_corpus.expected_records()
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    counts = import_content(get_engine(fresh), tmp_path / "export", "import-test")
    assert (counts.inserted, counts.updated, counts.unchanged) == (small_corpus.expected_records(), 0, 0)
    export_content(get_engine(fresh), tmp_path / "export-again", fresh)
    assert (tmp_path / "export" / "content_items.jsonl").read_text() == (tmp_path / "export-again" / "content_items.jsonl").read_text()
    again = import_content(get_engine(fresh), tmp_path / "export", "import-again")
    assert again.unchanged == small_corpus.expected_records()


def test_a_tampered_export_is_refused(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    materialize(source, tmp_path / "bk", sqlite_url, instance)
    export_content(get_engine(sqlite_url), tmp_path / "export", sqlite_url)
    with open(tmp_path / "export" / "content_items.jsonl", "a") as fh:
        fh.write(json.dumps({"legacy_id": "smuggled"}) + "\n")
    with pytest.raises(ExportError, match="fails its checksum"):
        import_content(get_engine(f"sqlite:///{tmp_path / 'x.db'}"), tmp_path / "export", "import-x")


def test_journal_entries_of_a_transaction_that_rolled_back_are_not_undone(tmp_path, target_url, instance):
    from migration_assets.backup import Journal, run_backup_dir, seal_backup
    from migration_assets.store.runs import finish_run, start_run

    source = write_source(tmp_path / "src")
    run = materialize(source, tmp_path / "bk", target_url, instance)
    engine = get_engine(target_url)
    before = snapshot(target_url)
    journal = Journal(run_backup_dir(tmp_path / "bk", "later"), "embeddings", "later")
    start_run(engine, "later", source_directory="x", config={})
    victims = [row[0] for row in before["embeddings"][:2]]
    with pytest.raises(RuntimeError), engine.begin() as conn:  # a transaction that fails after journaling
        journal.open_transaction(conn)
        journal.before_change(conn, "embeddings", "delete", victims)
        conn.execute(text("delete from embeddings where id in ({})".format(",".join(map(str, victims)))))
        raise RuntimeError("the provider failed mid-batch")
    assert snapshot(target_url) == before
    with engine.begin() as conn:  # and one that commits
        journal.open_transaction(conn)
        journal.before_change(conn, "embeddings", "delete", victims[:1])
        conn.execute(text(f"delete from embeddings where id = {victims[0]}"))
    finish_run(engine, "later", "completed")  # a run still running is not rolled back
    info = seal_backup(engine, "later", tmp_path / "bk", target_url)
    assert info["counts"] == {"embeddings.delete": 1}
    rollback(engine, run_backup_dir(tmp_path / "bk", "later") / "rollback_info.json", target_url, confirm=True)
    assert snapshot(target_url) == before
    assert run.success
