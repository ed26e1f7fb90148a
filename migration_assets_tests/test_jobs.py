"""The jobs a user picks in the UI, one per use: full and incremental migration, validation only
(the target untouched), repair of the derived tables, the whole-target checks on a schedule;
and the tags that say where a run came from and that the deploy config's run queue limits."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import func, select, text

from migration_assets.config import MigrationConfig
from migration_assets.definitions import defs
from migration_assets.defs.resources import EmbeddingModel, MigrationResource, TargetDatabase
from migration_assets.runner import run_migration
from migration_assets.store.database import get_engine
from migration_assets.store.tables import CONTENT, CONTENT_VECTORS, EMBEDDINGS, KNOWLEDGE, RUNS

REPO = Path(__file__).resolve().parent.parent


def resources(source: Path, backup: Path, url: str) -> dict:
    return {
        "migration": MigrationResource(source_directory=str(source), backup_directory=str(backup)),
        "target": TargetDatabase(url=url),
        "embedding_model": EmbeddingModel(),
    }


def test_a_job_per_use_and_the_checks_on_a_schedule():
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"migrate", "migrate_incremental", "validate_only", "repair_derived", "integrity_checks"} <= jobs
    checks = defs.resolve_job_def("integrity_checks").asset_layer.asset_graph.asset_check_keys
    assert {key.name for key in checks} == {"target_relationships", "target_tracking_drift"}
    assert defs.resolve_schedule_def("daily_integrity_checks").job_name == "integrity_checks"
    # the run queue's limit is on a tag the writing jobs really carry
    deploy = yaml.safe_load((REPO / "deploy" / "postgres" / "dagster.yaml").read_text())
    limited = {limit["key"] for limit in deploy["run_queue"]["tag_concurrency_limits"]}
    for name in ("migrate", "migrate_incremental", "repair_derived"):
        assert "migration/writes-target" in defs.resolve_job_def(name).tags and "migration/writes-target" in limited


def test_validation_only_writes_its_report_and_never_touches_the_target(small_corpus, tmp_path, instance):
    target = tmp_path / "never.db"
    job = defs.resolve_job_def("validate_only")
    result = job.execute_in_process(instance=instance, resources=resources(small_corpus.root, tmp_path / "bk", f"sqlite:///{target}"))
    assert result.success
    assert (tmp_path / "bk" / "validation_report.json").is_file() and not target.exists()


def test_repair_rebuilds_what_was_lost_over_the_whole_target_as_a_run_of_its_own(small_corpus, tmp_path, sqlite_url, instance):
    config = MigrationConfig(source_directory=str(small_corpus.root), backup_directory=str(tmp_path / "bk"))
    assert run_migration(config, sqlite_url, instance=instance).success
    engine = get_engine(sqlite_url)

    def counts() -> tuple[int, int, int]:
        with engine.connect() as conn:
            return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (KNOWLEDGE, EMBEDDINGS, CONTENT_VECTORS))

    before = counts()
    with engine.begin() as conn:  # lost by hand: some chunks (their vectors go with them), every short item's vector
        conn.execute(text("delete from knowledge_items where id in (select id from knowledge_items order by id limit 25)"))
        conn.execute(text("delete from content_vectors"))
    assert counts() != before
    result = defs.resolve_job_def("repair_derived").execute_in_process(
        instance=instance, resources=resources(small_corpus.root, tmp_path / "bk", sqlite_url)
    )
    assert result.success and counts() == before
    with engine.connect() as conn:
        assert conn.execute(select(RUNS.c.status).where(RUNS.c.id == result.run_id)).scalar_one() == "completed"


def test_the_whole_target_checks_run_alone_and_see_drift(small_corpus, tmp_path, sqlite_url, instance):
    config = MigrationConfig(source_directory=str(small_corpus.root), backup_directory=str(tmp_path / "bk"))
    outcome = run_migration(config, sqlite_url, instance=instance)
    assert outcome.success
    tags = instance.get_run_by_id(outcome.run_id).tags
    assert tags["migration/launcher"] == "cli" and tags["migration/mode"] == "full" and tags["migration/source"] == str(small_corpus.root)
    job = defs.resolve_job_def("integrity_checks")

    def evaluations() -> dict[str, bool]:
        result = job.execute_in_process(instance=instance, resources=resources(small_corpus.root, tmp_path / "bk", sqlite_url))
        assert result.success
        return {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}

    assert evaluations() == {"target_relationships": True, "target_tracking_drift": True}
    with get_engine(sqlite_url).begin() as conn:
        victim = conn.execute(select(CONTENT.c.source_path).limit(1)).scalar_one()
        conn.execute(CONTENT.delete().where(CONTENT.c.source_path == victim))
    assert evaluations() == {"target_relationships": True, "target_tracking_drift": False}


def test_the_failed_run_sensor_closes_a_run_in_the_target_the_run_was_given(monkeypatch):
    from migration_assets.defs.sensors import run_target_url

    monkeypatch.setenv("SOME_TARGET_URL", "sqlite:///elsewhere.db")
    assert run_target_url({"resources": {"target": {"config": {"url": "sqlite:///given.db"}}}}) == "sqlite:///given.db"
    assert run_target_url({"resources": {"target": {"config": {"url": {"env": "SOME_TARGET_URL"}}}}}) == "sqlite:///elsewhere.db"
    assert run_target_url({"resources": {"migration": {"config": {}}}}) is None  # the resource's own: $DATABASE_URL or the default
