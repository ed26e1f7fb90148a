"""Integrity checks: each rule broken on purpose, on SQLite and PostgreSQL, fails with a useful message."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from sqlalchemy import delete, func, select, text, update

from migration_assets import integrity
from migration_assets.reports import REPORT_FILE
from migration_assets.store.database import get_engine
from migration_assets.store.models import ContentItem, DataIntegrityCheck, Embedding, KnowledgeItem, LegacyMapping, RecordWarning
from migration_assets_tests.test_pipeline import materialize

CHECK_NAMES = {"reconciliation", "duplicate_content", "tracking_drift", "relationships", "embeddings"}


def write_source(root: Path) -> Path:
    root.mkdir()
    long = "Integrity matters for every migrated record. " * 40
    (root / "a.json").write_text(json.dumps([{"id": f"a{i}", "title": f"A{i}", "content": f"{long} {i}"} for i in range(5)]))
    (root / "b.md").write_text(f"---\ntitle: B\n---\n{long}")
    (root / "c.txt").write_text("short note")
    return root


@pytest.fixture
def landed(tmp_path, target_url, instance):
    source = write_source(tmp_path / "src")
    result = materialize(source, tmp_path / "bk", target_url, instance)
    assert result.success
    return result, source, get_engine(target_url)


def test_a_clean_run_passes_every_check_and_keeps_each_result(landed, tmp_path):
    result, _, engine = landed
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == CHECK_NAMES and all(e.passed for e in evaluations.values())
    with engine.connect() as conn:
        stored = conn.execute(
            select(DataIntegrityCheck.check_name, DataIntegrityCheck.passed).where(DataIntegrityCheck.run_id == result.run_id)
        ).all()
    assert dict(stored) == dict.fromkeys(CHECK_NAMES, True)
    report = json.loads((tmp_path / "bk" / REPORT_FILE).read_text())
    assert {c["check"] for c in report["integrity"]} == CHECK_NAMES


def test_a_deleted_mapping_fails_relationships(landed):
    _, _, engine = landed
    with engine.begin() as conn:
        conn.execute(delete(LegacyMapping).where(LegacyMapping.legacy_id == "a3"))
    outcome = integrity.check_relationships(engine)
    assert not outcome.passed and outcome.severity == "ERROR"
    assert "content items without a legacy mapping to them: ['a3']" in outcome.message


def test_knowledge_whose_content_is_gone_fails_relationships(landed):
    _, _, engine = landed
    with engine.connect() as conn:
        victim = conn.execute(select(KnowledgeItem.content_item_id).limit(1)).scalar_one()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("set local session_replication_role = replica"))  # skip the FK triggers, as a careless hand would
            conn.execute(delete(ContentItem).where(ContentItem.id == victim))
    else:
        raw = engine.raw_connection()  # outside any transaction, where SQLite honours the pragma
        try:
            raw.execute("pragma foreign_keys = off")
            raw.execute("delete from content_items where id = ?", (victim,))
            raw.execute("pragma foreign_keys = on")
        finally:
            raw.close()
    outcome = integrity.check_relationships(engine)
    assert not outcome.passed and "knowledge items without their content item" in outcome.message


@pytest.mark.parametrize(
    ("vector", "problem"),
    [
        (np.full(256, np.nan, dtype=np.float32), "not finite"),
        (np.r_[np.ones(255), -np.inf].astype(np.float32), "not finite"),
        (np.ones(8, dtype=np.float32), "dimension 8"),
    ],
)
def test_a_corrupt_vector_fails_the_embeddings_check(landed, vector, problem):
    result, _, engine = landed
    with engine.begin() as conn:
        victim = conn.execute(select(Embedding.id).limit(1)).scalar_one()
        conn.execute(update(Embedding).where(Embedding.id == victim).values(vector=vector))
    outcome = integrity.check_embeddings(engine, result.run_id, dimension=256)
    assert not outcome.passed and problem in outcome.message
    assert outcome.details["bad_vectors"][0]["embedding_id"] == victim


def test_a_chunk_without_vector_fails_the_embeddings_check(landed):
    result, _, engine = landed
    with engine.begin() as conn:
        chunk = conn.execute(select(Embedding.knowledge_item_id).limit(1)).scalar_one()
        conn.execute(delete(Embedding).where(Embedding.knowledge_item_id == chunk))
    outcome = integrity.check_embeddings(engine, result.run_id, dimension=256)
    assert not outcome.passed and f"knowledge items without an embedding: [{chunk}]" in outcome.message


def test_rows_deleted_by_hand_are_drift_and_break_reconciliation_until_migrated_again(landed, tmp_path, target_url, instance):
    result, source, engine = landed
    with engine.begin() as conn:
        conn.execute(delete(ContentItem).where(ContentItem.legacy_id == "a1"))
    drift = integrity.check_drift(engine, str(source.resolve()))
    assert not drift.passed and drift.details["files"] == [{"path": "a.json", "loaded": 5, "present": 4}]
    reconciliation = integrity.check_reconciliation(engine, result.run_id, files_discovered=3, records_parsed=7)
    assert not reconciliation.passed and "fewer rows in content_items than they loaded" in reconciliation.message
    again = materialize(source, tmp_path / "bk", target_url, instance)
    evaluations = {e.check_name: e.passed for e in again.get_asset_check_evaluations()}
    assert evaluations == dict.fromkeys(CHECK_NAMES, True)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(ContentItem.legacy_id == "a1")).scalar_one() == 1


def test_duplicate_content_under_different_ids_warns_with_the_groups(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "x.json").write_text(
        json.dumps([{"id": "x1", "title": "X", "content": "same words"}, {"id": "x2", "title": "Y", "content": "same words"}])
    )
    result = materialize(source, tmp_path / "bk", target_url, instance)
    assert result.success
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "duplicate_content"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    details = evaluation.metadata["details"].value
    assert details["examples"][0]["legacy_ids"] == ["x1", "x2"]


def test_a_run_over_a_corrupted_target_reports_the_failed_check(landed, tmp_path, target_url, instance):
    _, source, engine = landed
    with engine.begin() as conn:
        victim = conn.execute(select(Embedding.id).limit(1)).scalar_one()
        conn.execute(update(Embedding).where(Embedding.id == victim).values(vector=np.full(256, np.inf, dtype=np.float32)))
    rerun = materialize(source, tmp_path / "bk", target_url, instance)
    (evaluation,) = [e for e in rerun.get_asset_check_evaluations() if e.check_name == "embeddings"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert "not finite" in evaluation.description
    with engine.connect() as conn:
        passed = conn.execute(
            select(DataIntegrityCheck.passed).where(DataIntegrityCheck.run_id == rerun.run_id, DataIntegrityCheck.check_name == "embeddings")
        ).scalar_one()
    assert passed is False
    report = json.loads((tmp_path / "bk" / REPORT_FILE).read_text())
    assert [c["passed"] for c in report["integrity"] if c["check"] == "embeddings"] == [False]


def test_validation_off_records_warnings_for_the_records_it_lets_through(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "w.json").write_text(json.dumps({"id": "w1", "title": "T", "url": "mailto:someone"}))
    assert materialize(source, tmp_path / "bk", target_url, instance, validate_data=False).success
    with get_engine(target_url).connect() as conn:
        warnings = conn.execute(select(RecordWarning.source_path, RecordWarning.reason)).all()
    reason = "url is neither an http(s)/ftp URL nor a site-relative path: got 'mailto:someone'"
    assert warnings == [("w.json", reason)]
    report = json.loads((tmp_path / "bk" / REPORT_FILE).read_text())
    assert report["validation_warnings"] == [{"path": "w.json", "index": 0, "legacy_id": "w1", "rules": ["url.policy"], "reason": reason}]
    assert report["by_rule"] == {"url.policy": {"rejected": 0, "warned": 1}}
