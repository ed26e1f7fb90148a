"""End to end: the shared corpus generator's output materialized through every asset."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage
from sqlalchemy import func, select, text

from migration_assets.defs.catalog import ASSETS
from migration_assets.defs.partitions import WAVES
from migration_assets.defs.resources import EmbeddingModel, MigrationResource, TargetDatabase
from migration_assets.embeddings import get_provider
from migration_assets.reports import REPORT_FILE, SUMMARY_FILE
from migration_assets.store.database import get_engine
from migration_assets.store.models import ContentItem, Embedding, KnowledgeItem, LegacyMapping, MigrationItem, MigrationRun, RejectedRecord
from migration_assets.waves import plan_waves

EXPECTED_STATUS = {"valid": "migrated", "invalid": "rejected", "skip": "skipped"}


def materialize(
    source: Path,
    backup: Path,
    url: str,
    instance: dg.DagsterInstance,
    *,
    key: str | None = None,
    adopt_pending: bool = False,
    provider: str | None = None,
    tags: dict[str, str] | None = None,
    **config,
) -> dg.ExecuteInProcessResult | None:
    """Plan a wave of ``source`` (as the CLI does) and materialize every asset for it; None when
    an incremental plan finds nothing to do. With ``key``, materialize that partition instead;
    ``provider``: the embedding provider (default: the environment's, hashing); ``tags``: the run's."""
    migration = MigrationResource(source_directory=str(source), backup_directory=str(backup), **config)
    if key is None:
        waves = plan_waves(get_engine(url), migration.settings(), adopt_pending=adopt_pending)
        if not waves:
            return None
        key = waves[0].partition_key
    if not instance.has_dynamic_partition(WAVES, key):
        instance.add_dynamic_partitions(WAVES, [key])
    resources = {"migration": migration, "target": TargetDatabase(url=url), "embedding_model": EmbeddingModel(provider=provider)}
    # Dagster 1.13 looks the instance's defs-state storage up through a context variable that a
    # disposed instance can leave behind; pin it to this instance for the run
    with set_defs_state_storage(instance.defs_state_storage):
        return dg.materialize(ASSETS, resources=resources, instance=instance, partition_key=key, raise_on_error=False, tags=tags)


def content_snapshot(url: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        content = conn.execute(text("select * from content_items order by id")).all()
        knowledge = conn.execute(text("select * from knowledge_items order by id")).all()
        vectors = conn.execute(text("select * from embeddings order by id")).all()
        mappings = conn.execute(text("select * from legacy_mappings order by legacy_id")).all()
    return [content, knowledge, vectors, mappings]


@pytest.fixture
def migrated(small_corpus, tmp_path, target_url, instance):
    result = materialize(small_corpus.root, tmp_path / "backup", target_url, instance)
    assert result.success
    return result


def test_exactly_the_manifest_records_are_loaded(small_corpus, migrated, target_url):
    engine = get_engine(target_url)
    with engine.connect() as conn:
        per_file = dict(conn.execute(select(ContentItem.source_path, func.count()).group_by(ContentItem.source_path)).all())
    expected = {path: f["records"] for path, f in small_corpus.files.items() if f["expect"] == "valid"}
    assert per_file == expected
    assert sum(per_file.values()) == small_corpus.expected_records()


def test_every_manifest_file_is_in_the_report_with_the_right_status(small_corpus, migrated, tmp_path):
    report = json.loads((tmp_path / "backup" / REPORT_FILE).read_text())
    statuses = {f["path"]: f["status"] for f in report["files"]}
    assert statuses == {path: EXPECTED_STATUS[f["expect"]] for path, f in small_corpus.files.items()}
    assert all(f["reason"] for f in report["files"] if f["status"] != "migrated")
    totals = report["totals"]
    assert totals["files"] == totals["migrated"] + totals["skipped"] + totals["rejected"]
    records = totals["records"]
    assert records["found"] == records["inserted"] + records["updated"] + records["unchanged"] + records["rejected"]
    assert (tmp_path / "backup" / SUMMARY_FILE).read_text().startswith(f"Migration run {report['run_id']}: completed")


def test_rows_carry_the_legacy_fields(small_corpus, migrated, target_url):
    path = next(p for p, f in sorted(small_corpus.files.items()) if f["expect"] == "valid" and f["format"] == "json" and f["records"] == 1)
    source = json.loads((small_corpus.root / path).read_text())
    with get_engine(target_url).connect() as conn:
        row = conn.execute(select(ContentItem).where(ContentItem.source_path == path)).one()
    assert row.legacy_id == str(source["id"])
    assert (row.title, row.content, row.url, row.tags) == (source["title"], source["content"], source.get("url"), source.get("tags", []))
    # every legacy field is kept in metadata, mapped or not, but the content (stored once), with the
    # record's own metadata object merged in
    assert row.metadata == {**{k: v for k, v in source.items() if k not in ("content", "metadata")}, **source.get("metadata", {})}
    assert row.created_at.strftime("%Y-%m-%dT%H:%M:00Z") == source["created_at"]


def test_mappings_knowledge_and_embeddings_are_complete(migrated, target_url):
    with get_engine(target_url).connect() as conn:
        items = conn.execute(select(func.count()).select_from(ContentItem)).scalar_one()
        mapped = conn.execute(select(func.count()).select_from(LegacyMapping)).scalar_one()
        substantial = conn.execute(select(func.count()).where(ContentItem.content_length >= 500)).scalar_one()
        with_chunks = conn.execute(select(func.count(func.distinct(KnowledgeItem.content_item_id)))).scalar_one()
        chunks = conn.execute(select(func.count()).select_from(KnowledgeItem)).scalar_one()
        vectors = conn.execute(select(Embedding.vector, Embedding.dimension)).all()
        one = conn.execute(select(ContentItem.id, ContentItem.content).where(ContentItem.content_length >= 3000).limit(1)).one()
        pieces = conn.execute(select(KnowledgeItem.text).where(KnowledgeItem.content_item_id == one.id).order_by(KnowledgeItem.chunk_index)).scalars()
        joined = "".join(pieces)
    assert mapped == items
    assert with_chunks == substantial > 0
    assert len(vectors) == chunks
    assert all(dim == 256 and vector.shape == (256,) for vector, dim in vectors)
    assert joined.strip() == one.content.strip()


def test_run_is_tracked_per_file_and_completed(small_corpus, migrated, target_url):
    with get_engine(target_url).connect() as conn:
        run = conn.execute(select(MigrationRun)).one()
        tracked = conn.execute(select(func.count()).select_from(MigrationItem).where(MigrationItem.run_id == run.id)).scalar_one()
        writers = set(conn.execute(select(ContentItem.run_id).distinct()).scalars())
    assert run.id == migrated.run_id and run.status == "completed" and run.finished_at is not None
    assert tracked == len(small_corpus.files)
    assert writers == {migrated.run_id}


def test_running_the_same_migration_twice_leaves_the_database_as_once(small_corpus, migrated, tmp_path, target_url, instance):
    before = content_snapshot(target_url)
    again = materialize(small_corpus.root, tmp_path / "backup", target_url, instance)
    assert again.success
    assert content_snapshot(target_url) == before
    report = json.loads((tmp_path / "backup" / REPORT_FILE).read_text())
    records = report["totals"]["records"]
    assert records["inserted"] == records["updated"] == 0
    assert records["unchanged"] == small_corpus.expected_records()


def test_an_edited_record_is_updated_in_place(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps({"id": "a1", "title": "First", "content": "one " * 200}))
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    with get_engine(target_url).connect() as conn:
        first_id = conn.execute(select(ContentItem.id)).scalar_one()
    (source / "a.json").write_text(json.dumps({"id": "a1", "title": "Second", "content": "two " * 200}))
    second = materialize(source, tmp_path / "bk", target_url, instance)
    assert second.success
    with get_engine(target_url).connect() as conn:
        rows = conn.execute(select(ContentItem.id, ContentItem.title)).all()
        chunk_texts = conn.execute(select(KnowledgeItem.text)).scalars().all()
        embedded = conn.execute(select(func.count()).select_from(Embedding)).scalar_one()
    assert rows == [(first_id, "Second")]
    assert chunk_texts and all(t.startswith("two") for t in chunk_texts)
    assert embedded == len(chunk_texts)
    # the new chunks and vectors came with the content's write; the repair passes found nothing
    metadata = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata for e in second.get_asset_materialization_events()}
    assert metadata["content_items"]["chunks"].value == metadata["content_items"]["vectors"].value == len(chunk_texts)
    assert metadata["knowledge_items"]["chunks_rebuilt_here"].value == 0 and metadata["embeddings"]["embedded_here"].value == 0
    # and the assets show what the tables hold, and what this run wrote into them
    assert metadata["knowledge_items"]["dagster/row_count"].value == metadata["knowledge_items"]["written_by_this_run"].value == len(chunk_texts)
    assert metadata["embeddings"]["dagster/row_count"].value == metadata["embeddings"]["written_by_this_run"].value == len(chunk_texts)
    assert metadata["content_items"]["dagster/row_count"].value == 1


def test_the_run_appears_in_the_instance_history_with_asset_metadata(migrated, instance, target_url):
    record = instance.get_latest_materialization_event(dg.AssetKey("legacy_files"))
    assert record is not None and record.run_id == migrated.run_id
    metadata = record.asset_materialization.metadata
    assert metadata["files"].value == 250 and "preview" in metadata
    # the content_items asset lists every file not migrated, with its reason, as a table
    content = instance.get_latest_materialization_event(dg.AssetKey("content_items")).asset_materialization.metadata
    shown = {(r.data["file"], r.data["status"], r.data["reason"]) for r in content["files_not_migrated"].value.records}
    query = text("select source_path, status, reason from migration_items where status in ('rejected', 'skipped') and run_id = :r")
    with get_engine(target_url).connect() as conn:
        expected = {(path, status, reason or "") for path, status, reason in conn.execute(query, {"r": migrated.run_id})}
    assert shown == expected and shown
    assert content["records_per_second"].value > 0 and content["files_per_second"].value > 0
    # each check result says which wave it checked
    checks = [e for e in instance.get_records_for_run(migrated.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records]
    partition = instance.get_run_by_id(migrated.run_id).tags["dagster/partition"]
    assert checks and all(r.event_log_entry.dagster_event.event_specific_data.metadata["partition"].value == partition for r in checks)


def test_a_legacy_id_already_migrated_from_another_file_is_rejected_not_overwritten(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps({"id": "same", "title": "From a"}))
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    (source / "a.json").unlink()
    (source / "b.json").write_text(json.dumps({"id": "same", "title": "From b"}))
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(ContentItem.title)).scalars().all() == ["From a"]
    report = json.loads((tmp_path / "bk" / REPORT_FILE).read_text())
    status = {f["path"]: (f["status"], f["reason"]) for f in report["files"]}
    assert status["b.json"] == ("rejected", "legacy_id 'same' is already migrated from 'a.json'")


def test_duplicate_ids_within_a_run_keep_the_first_and_reject_the_rest(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps({"id": 7, "title": "first"}))
    (source / "b.jsonl").write_text(json.dumps({"id": "7", "title": "second"}) + "\n")
    assert materialize(source, tmp_path / "bk", target_url, instance, batch_size=1).success
    report = json.loads((tmp_path / "bk" / REPORT_FILE).read_text())
    assert [(r["path"], r["reason"]) for r in report["rejected_records"]] == [("b.jsonl", "duplicate legacy_id '7': first seen in a.json")]


def test_with_validation_off_a_duplicate_id_in_a_later_batch_is_still_refused(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps({"id": "x", "title": "first", "url": "not a url"}))
    (source / "b.json").write_text(json.dumps({"id": "x", "title": "second"}))
    assert materialize(source, tmp_path / "bk", target_url, instance, batch_size=1, validate_data=False).success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(ContentItem.title)).scalars().all() == ["first"]
    report = json.loads((tmp_path / "bk" / REPORT_FILE).read_text())
    assert [(r["path"], r["reason"]) for r in report["rejected_records"]] == [("b.json", "duplicate legacy_id 'x': first seen in a.json")]


def test_with_validation_off_failures_are_recorded_but_records_load(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps({"id": 1, "title": "t", "url": "not a url"}))
    assert materialize(source, tmp_path / "bk", target_url, instance, validate_data=False).success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(ContentItem.url)).scalars().all() == ["not a url"]


def test_options_that_have_not_landed_are_refused_not_ignored(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("x")
    resources = {
        "migration": MigrationResource(source_directory=str(source), backup_directory=str(tmp_path / "bk"), dry_run=True),
        "target": TargetDatabase(url=target_url),
        "embedding_model": EmbeddingModel(),
    }
    instance.add_dynamic_partitions(WAVES, ["dry"])
    result = dg.materialize(ASSETS, resources=resources, instance=instance, partition_key="dry", raise_on_error=False)
    assert not result.success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == 0


def test_a_duplicate_whose_first_occurrence_is_invalid_is_loaded(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps([{"id": 9, "url": "bad"}, {"id": 9, "title": "good"}]))
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(ContentItem.title)).scalars().all() == ["good"]


def test_parallel_processing_gives_the_same_database_as_a_serial_run(small_corpus, tmp_path, target_url, instance):
    serial_url = f"sqlite:///{tmp_path / 'serial.db'}"
    assert materialize(small_corpus.root, tmp_path / "b-serial", serial_url, instance).success
    parallel = {"parallel_processing": True, "max_workers": 2, "batch_size": 7}
    assert materialize(small_corpus.root, tmp_path / "b-parallel", target_url, instance, **parallel).success

    def state(url: str) -> list[list[tuple]]:
        c, k, e, r = ContentItem, KnowledgeItem, Embedding, RejectedRecord
        queries = [
            select(c.legacy_id, c.source_path, c.title, c.content, c.tags, c.metadata_, c.record_hash).order_by(c.legacy_id),
            select(c.legacy_id, k.chunk_index, k.text).join(k, k.content_item_id == c.id).order_by(c.legacy_id, k.chunk_index),
            select(c.legacy_id, k.chunk_index, e.model)
            .join(k, k.content_item_id == c.id)
            .join(e, e.knowledge_item_id == k.id)
            .order_by(c.legacy_id, k.chunk_index),
            select(r.source_path, r.record_index, r.stage, r.reason).order_by(r.source_path, r.record_index, r.stage),
        ]
        with get_engine(url).connect() as conn:
            return [[tuple(row) for row in conn.execute(query)] for query in queries]

    serial, parallel = state(serial_url), state(target_url)
    assert len(serial[0]) == small_corpus.expected_records()
    assert serial == parallel
    provider = get_provider()
    with get_engine(target_url).connect() as conn:
        found = conn.execute(select(KnowledgeItem.text, Embedding.vector).join(Embedding, Embedding.knowledge_item_id == KnowledgeItem.id)).all()
        chunk_texts, vectors = zip(*found, strict=True)
    assert np.allclose(np.vstack([np.asarray(v, dtype=np.float32) for v in vectors]), provider.embed(list(chunk_texts)))


def test_every_chunk_is_its_slice_of_the_content_and_every_vector_embeds_its_chunk(migrated, target_url):
    # chunks are cut in worker processes and sliced out of the content by the database;
    # vectors are computed in worker processes from the stored text
    from migration_assets.embeddings import chunk_text

    with get_engine(target_url).connect() as conn:
        contents = dict(conn.execute(select(ContentItem.id, ContentItem.content).where(ContentItem.content_length >= 500)).all())
        chunks = conn.execute(
            select(
                KnowledgeItem.id,
                KnowledgeItem.content_item_id,
                KnowledgeItem.chunk_index,
                KnowledgeItem.text,
                KnowledgeItem.char_start,
                KnowledgeItem.char_end,
            )
        ).all()
        vectors = dict(conn.execute(select(Embedding.knowledge_item_id, Embedding.vector)).all())
    expected = {(item_id, c.index): (c.start, c.end, c.text) for item_id, content in contents.items() for c in chunk_text(content, 1200)}
    assert {(c.content_item_id, c.chunk_index): (c.char_start, c.char_end, c.text) for c in chunks} == expected
    provider = get_provider()
    assert np.array_equal(np.vstack([vectors[c.id] for c in chunks]), provider.embed([c.text for c in chunks]))
