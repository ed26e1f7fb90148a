"""Incremental migrations: waves as partitions, unchanged files left alone, sensor and schedule."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select, text

from migration_assets.config import MigrationConfig
from migration_assets.definitions import defs
from migration_assets.defs.partitions import WAVES
from migration_assets.defs.resources import MigrationResource, TargetDatabase
from migration_assets.defs.schedules import daily_incremental_pass
from migration_assets.defs.sensors import watch_source_directory
from migration_assets.store.database import get_engine
from migration_assets.store.models import ContentItem, MigrationWave
from migration_assets.waves import plan_incremental
from migration_assets_tests.test_pipeline import materialize

TABLES = [
    "content_items", "knowledge_items", "embeddings", "legacy_mappings", "migration_items", "rejected_records",
    "record_warnings", "migration_runs", "data_integrity_checks", "migration_waves",
]  # fmt: skip


def database_state(url: str) -> dict[str, list[tuple]]:
    with get_engine(url).connect() as conn:
        return {table: conn.execute(text(f"select * from {table} order by 1")).all() for table in TABLES}


def plan(source: Path, url: str):
    return plan_incremental(get_engine(url), MigrationConfig(source_directory=str(source), backup_directory=str(source)))


@pytest.fixture
def source(small_corpus, tmp_path) -> Path:
    copy = tmp_path / "src"
    shutil.copytree(small_corpus.root, copy, symlinks=True)
    return copy


def test_an_unchanged_source_needs_no_run_and_leaves_the_database_exactly_as_it_was(source, small_corpus, tmp_path, target_url, instance):
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    before = database_state(target_url)
    assert materialize(source, tmp_path / "bk", target_url, instance, incremental=True) is None
    assert database_state(target_url) == before
    counts = plan(source, target_url).counts()
    nothing = dict.fromkeys(("new", "changed", "drifted", "removed", "pending", "refused", "reevaluate", "remapped"), 0)
    assert counts == {**nothing, "unchanged": len(small_corpus.files)}


def test_unchanged_files_are_recognised_from_size_and_mtime_without_being_read(source, tmp_path, target_url, instance):
    (source / "stable.txt").write_text("AAAA")
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    stat = (source / "stable.txt").stat()
    (source / "stable.txt").write_text("BBBB")  # same size; the mtime is put back below
    os.utime(source / "stable.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "stable.txt" in {f.rel_path for f in plan(source, target_url).unchanged}
    os.utime(source / "stable.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert "stable.txt" in {f.rel_path for f in plan(source, target_url).changed}


def test_new_and_edited_files_are_exactly_what_the_next_incremental_run_processes(source, small_corpus, tmp_path, target_url, instance):
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    engine = get_engine(target_url)
    edited = sorted(p for p, f in small_corpus.files.items() if f["expect"] == "valid" and f["format"] == "json" and f["records"] == 1)[:3]
    with engine.connect() as conn:
        ids_before = dict(conn.execute(select(ContentItem.source_path, ContentItem.id).where(ContentItem.source_path.in_(edited))).all())
        total_before = conn.execute(select(func.count()).select_from(ContentItem)).scalar_one()
    for path in edited:
        record = json.loads((source / path).read_text())
        record["title"] = "Edited " + record["title"]
        (source / path).write_text(json.dumps(record))
    (source / "new").mkdir()
    (source / "new" / "fresh.jsonl").write_text("\n".join(json.dumps({"id": f"fresh-{i}", "title": f"F{i}"}) for i in range(4)))
    result = materialize(source, tmp_path / "bk", target_url, instance, incremental=True)
    assert result.success
    report = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    assert sorted(f["path"] for f in report["files"]) == sorted([*edited, "new/fresh.jsonl"])
    assert report["totals"]["records"] == {"found": 7, "inserted": 4, "updated": 3, "unchanged": 0, "rejected": 0}
    with engine.connect() as conn:
        rows = conn.execute(select(ContentItem.source_path, ContentItem.id, ContentItem.title).where(ContentItem.source_path.in_(edited))).all()
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == total_before + 4
    assert {path: item_id for path, item_id, _ in rows} == ids_before
    assert all(title.startswith("Edited ") for _, _, title in rows)


def test_rematerializing_a_wave_is_idempotent(source, tmp_path, target_url, instance):
    first = materialize(source, tmp_path / "bk", target_url, instance)
    key = first.dagster_run.tags["dagster/partition"]
    before = {t: rows for t, rows in database_state(target_url).items() if t in TABLES[:4]}
    again = materialize(source, tmp_path / "bk", target_url, instance, key=key)
    assert again.success and again.dagster_run.tags["dagster/partition"] == key
    assert {t: rows for t, rows in database_state(target_url).items() if t in TABLES[:4]} == before


def test_a_failed_wave_is_retried_alone(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "one.txt").write_text("first wave")
    good = materialize(source, tmp_path / "bk", target_url, instance)
    (source / "two.txt").write_text("second wave")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "backups").write_text("not a folder")  # the second wave cannot journal its writes
    failed = materialize(source, blocked, target_url, instance, incremental=True)
    assert good.success and not failed.success
    key = failed.dagster_run.tags["dagster/partition"]
    with get_engine(target_url).connect() as conn:
        wave = conn.execute(select(MigrationWave.files, MigrationWave.status).where(MigrationWave.partition_key == key)).one()
    assert wave == (["two.txt"], "planned")
    assert plan(source, target_url).counts()["pending"] == 1  # its file is left to that wave, not planned again
    retried = materialize(source, tmp_path / "bk", target_url, instance, key=key)
    assert retried.success
    with get_engine(target_url).connect() as conn:
        rows = dict(conn.execute(select(ContentItem.source_path, ContentItem.run_id)).all())
    assert rows == {"one.txt": good.run_id, "two.txt": retried.run_id}
    status = instance.get_status_by_partition(
        dg.AssetKey("content_items"),
        [good.dagster_run.tags["dagster/partition"], key],
        defs.resolve_asset_graph().get(dg.AssetKey("content_items")).partitions_def,
    )
    assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}


def test_checks_of_a_partitioned_run_judge_that_wave_only(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "dupes.json").write_text(json.dumps([{"id": "d1", "title": "a", "content": "twin"}, {"id": "d2", "title": "b", "content": "twin"}]))
    first = materialize(source, tmp_path / "bk", target_url, instance)
    (source / "clean.json").write_text(json.dumps({"id": "c1", "title": "c", "content": "unique words"}))
    second = materialize(source, tmp_path / "bk", target_url, instance, incremental=True)
    verdict = {r.run_id: {e.check_name: e.passed for e in r.get_asset_check_evaluations()} for r in (first, second)}
    assert verdict[first.run_id]["duplicate_content"] is False
    assert verdict[second.run_id]["duplicate_content"] is True
    assert verdict[second.run_id]["reconciliation"] is True
    (evaluation,) = [e for e in second.get_asset_check_evaluations() if e.check_name == "reconciliation"]
    assert "1 files and 1 records all accounted for" in evaluation.description
    assert second.dagster_run.tags["dagster/partition"] != first.dagster_run.tags["dagster/partition"]


def test_removed_files_are_reported_and_pruned_only_when_asked_and_only_in_their_source(tmp_path, target_url, instance):
    sources = []
    for name in ("s1", "s2"):
        root = tmp_path / name
        root.mkdir()
        (root / "shared-name.json").write_text(json.dumps({"id": f"{name}-x", "title": name}))
        (root / "keep.txt").write_text(f"keep {name}")
        assert materialize(root, tmp_path / f"bk-{name}", target_url, instance).success
        sources.append(root)
    (sources[0] / "shared-name.json").unlink()
    assert plan(sources[0], target_url).removed == ["shared-name.json"]
    (sources[0] / "keep.txt").write_text("keep s1, edited")
    assert materialize(sources[0], tmp_path / "bk-s1", target_url, instance, incremental=True).success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(func.count()).where(ContentItem.legacy_id == "s1-x")).scalar_one() == 1  # kept: no prune asked
    (sources[0] / "keep.txt").write_text("keep s1, edited again")
    assert materialize(sources[0], tmp_path / "bk-s1", target_url, instance, incremental=True, prune_removed=True).success
    with get_engine(target_url).connect() as conn:
        legacy_ids = set(conn.execute(select(ContentItem.legacy_id)).scalars())
    assert "s1-x" not in legacy_ids and "s2-x" in legacy_ids
    report = json.loads((tmp_path / "bk-s1" / "migration_report.json").read_text())
    assert {f["path"]: f["status"] for f in report["files"]}["shared-name.json"] == "removed"
    assert plan(sources[0], target_url).removed == []


def test_drifted_files_are_migrated_again_by_an_incremental_run(source, tmp_path, target_url, instance):
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    engine = get_engine(target_url)
    with engine.begin() as conn:
        victim = conn.execute(select(ContentItem.source_path).order_by(ContentItem.id).limit(1)).scalar_one()
        conn.execute(ContentItem.__table__.delete().where(ContentItem.source_path == victim))
    assert [f.rel_path for f in plan(source, target_url).drifted] == [victim]
    assert materialize(source, tmp_path / "bk", target_url, instance, incremental=True).success
    assert plan(source, target_url).counts()["drifted"] == 0


def resources_for(source: Path, backup: Path, url: str) -> dict:
    return {"migration": MigrationResource(source_directory=str(source), backup_directory=str(backup)), "target": TargetDatabase(url=url)}


def test_the_sensor_requests_a_run_per_new_wave_and_leaves_pending_files_to_their_wave(tmp_path, sqlite_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    resources = resources_for(source, tmp_path / "bk", sqlite_url)
    first = watch_source_directory(dg.build_sensor_context(instance=instance, resources=resources))
    (key,) = [request.partition_key for request in first.run_requests]
    assert first.dynamic_partitions_requests[0].partition_keys == [key]
    again = watch_source_directory(dg.build_sensor_context(instance=instance, resources=resources))
    assert not again.run_requests and "nothing new" in again.skip_reason.skip_message
    (source / "b.txt").write_text("b")
    third = watch_source_directory(dg.build_sensor_context(instance=instance, resources=resources))
    (second_key,) = [request.partition_key for request in third.run_requests]
    with get_engine(sqlite_url).connect() as conn:
        files = dict(conn.execute(select(MigrationWave.partition_key, MigrationWave.files)).all())
    assert files == {key: ["a.txt"], second_key: ["b.txt"]}


def test_a_failed_waves_files_go_back_to_the_planner(tmp_path, sqlite_url, instance):
    from migration_assets.runner import run_wave

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a first version long enough to read")
    (source / "b.txt").write_text("b")
    resources = resources_for(source, tmp_path / "bk", sqlite_url)
    (request,) = watch_source_directory(dg.build_sensor_context(instance=instance, resources=resources)).run_requests
    instance.add_dynamic_partitions(WAVES, [request.partition_key])
    config = MigrationConfig(source_directory=str(source), backup_directory=str(tmp_path / "bk"), incremental=True)
    failed = run_wave(config, sqlite_url, request.partition_key, instance=instance, embedding_provider="no-such-model")
    assert not failed.success
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(MigrationWave.status).where(MigrationWave.partition_key == request.partition_key)).scalar_one() == "failed"
    (source / "a.txt").write_text("a second version, edited after the wave failed")
    again = watch_source_directory(dg.build_sensor_context(instance=instance, resources=resources))
    (retry,) = again.run_requests  # before: "nothing new or changed", the edit left to the failed wave forever
    with get_engine(sqlite_url).connect() as conn:
        files = conn.execute(select(MigrationWave.files).where(MigrationWave.partition_key == retry.partition_key)).scalar_one()
    assert "a.txt" in files and retry.partition_key != request.partition_key


def test_the_sensor_bounds_the_size_of_a_wave(tmp_path, sqlite_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        (source / f"f{i}.txt").write_text(str(i))
    resources = {
        "migration": MigrationResource(source_directory=str(source), backup_directory=str(tmp_path / "bk"), wave_max_files=2),
        "target": TargetDatabase(url=sqlite_url),
    }
    result = watch_source_directory(dg.build_sensor_context(instance=instance, resources=resources))
    assert len(result.run_requests) == 3


def test_the_daily_schedule_registers_its_waves_and_requests_their_runs(tmp_path, sqlite_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    context = dg.build_schedule_context(instance=instance, resources=resources_for(source, tmp_path / "bk", sqlite_url))
    requests = daily_incremental_pass(context)
    (request,) = requests
    assert instance.has_dynamic_partition(WAVES, request.partition_key)
    assert daily_incremental_pass(
        dg.build_schedule_context(instance=instance, resources=resources_for(source, tmp_path / "bk", sqlite_url))
    ).skip_message


def test_sensor_and_schedule_are_in_the_definitions_and_start_stopped():
    sensor = defs.resolve_sensor_def("watch_source_directory")
    schedule = defs.resolve_schedule_def("daily_incremental_pass")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED and schedule.cron_schedule == "0 3 * * *"


def test_deleted_files_alone_make_a_wave_when_pruning_is_asked(tmp_path, sqlite_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "keep.txt").write_text("keep")
    (source / "drop.txt").write_text("drop")
    assert materialize(source, tmp_path / "bk", sqlite_url, instance).success
    (source / "drop.txt").unlink()
    assert materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True) is None  # reported, kept
    pruned = materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True, prune_removed=True)
    assert pruned.success
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(ContentItem.source_path)).scalars().all() == ["keep.txt"]


def test_records_the_target_refused_are_retried_by_the_next_cli_run(tmp_path, sqlite_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "x.json").write_text(json.dumps({"id": "L", "title": "from x"}))
    assert materialize(source, tmp_path / "bk", sqlite_url, instance).success
    (source / "y.json").write_text(json.dumps({"id": "L", "title": "from y"}))
    (source / "x.json").unlink()
    assert materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True).success  # y refused: L belongs to x
    assert [f.rel_path for f in plan(source, sqlite_url).refused] == ["y.json"]
    assert materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True, prune_removed=True).success  # x pruned
    assert materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True, adopt_pending=True).success  # y retried
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(ContentItem.source_path, ContentItem.title)).all() == [("y.json", "from y")]


def test_each_parsed_file_is_tracked_with_the_sha256_of_the_bytes_it_was_parsed_from(source, tmp_path, target_url, instance):
    # the inventory does not read new files; the parse hashes what it reads
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    with get_engine(target_url).connect() as conn:
        tracked = conn.execute(text("select source_path, sha256 from migration_items where status in ('migrated', 'rejected')")).all()
    assert tracked
    for path, digest in tracked:
        if (source / path).is_file() and not (source / path).is_symlink():
            assert digest == hashlib.sha256((source / path).read_bytes()).hexdigest(), path
