"""Semantic embeddings: the MiniLM transformer and the static model distilled from it, offline;
what they find on the labeled set beside the hashing embedder; switching providers re-embeds
and never compares vectors of different models; unchanged chunks are never embedded again;
a missing extra is one line saying what to install."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text

from migration_assets import service
from migration_assets.config import MigrationConfig
from migration_assets.embeddings import get_provider
from migration_assets.search import search
from migration_assets.store.database import get_engine
from migration_assets.store.tables import CONTENT_VECTORS, EMBEDDINGS, KNOWLEDGE
from migration_assets_tests.labeled_search import DOCS, HELD_OUT, NAMES, PARAPHRASES, shared_words, write_store
from migration_assets_tests.test_workflow import run


def test_a_missing_extra_is_one_line_saying_what_to_install(monkeypatch):
    from migration_assets.embeddings.minilm import ProviderUnavailable

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    with pytest.raises(ProviderUnavailable) as caught:
        get_provider("minilm")
    message = str(caught.value)
    assert "\n" not in message and "pip install" in message and "semantic" in message and "sentence_transformers" in message


def test_the_labeled_set_is_what_it_claims():
    assert len(PARAPHRASES) >= 30 and len(HELD_OUT) >= 20 and len(NAMES) >= 10
    assert not [(query, doc) for query, doc in PARAPHRASES + HELD_OUT if shared_words(query, doc)]
    for name, doc in NAMES:  # each name occurs in its document only
        assert [key for key, (title, content) in DOCS.items() if name.lower() in f"{title} {content}".lower()] == [doc]


def migrated_labeled_store(tmp_path: Path, url: str):
    write_store(tmp_path / "store")
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    done = run("migrate", "--source", str(tmp_path / "store"), "--backup", str(tmp_path / "bk"), "-q", home=tmp_path, url=url)
    assert done.returncode == 0, done.stderr
    return get_engine(url)


@pytest.fixture
def labeled(tmp_path, sqlite_url, monkeypatch):
    """The labeled store migrated (every document cut into its chunk, short or not)."""
    engine = migrated_labeled_store(tmp_path, sqlite_url)
    config = MigrationConfig(source_directory=str(tmp_path / "store"), backup_directory=str(tmp_path / "bk"), knowledge_min_chars=1)
    service.knowledge_stage(engine, "labeled", config)
    return engine


def first_rate(engine, provider, queries) -> float:
    return sum(search(engine, query, provider=provider, limit=1)["results"][0]["legacy_id"] == doc for query, doc in queries) / len(queries)


def test_minilm_finds_paraphrases_the_hashing_embedder_cannot_and_switching_re_embeds(labeled, semantic_available):
    engine = labeled
    hashing, minilm = get_provider("hashing"), get_provider("minilm")
    service.embedding_stage(engine, "labeled", hashing)
    hashing_paraphrases = first_rate(engine, hashing, PARAPHRASES)
    assert first_rate(engine, hashing, NAMES) == 1.0  # the text index finds names whatever the vectors
    # switching providers re-embeds every chunk, and only vectors of the query's model are compared
    counts = service.embedding_stage(engine, "labeled", minilm)
    with engine.connect() as conn:
        models = dict(conn.execute(select(EMBEDDINGS.c.model, func.count()).group_by(EMBEDDINGS.c.model)).tuples().all())
        chunks = conn.execute(select(func.count()).select_from(KNOWLEDGE)).scalar_one()
        dimensions = set(conn.execute(select(EMBEDDINGS.c.dimension)).scalars())
    assert models == {"all-MiniLM-L6-v2": chunks} and dimensions == {384} and counts.embedded == counts.replaced == chunks
    assert search(engine, "refunds", provider=hashing)["matched"]["vector"] == 0  # hashing vectors are gone; none of MiniLM's compared
    minilm_paraphrases = first_rate(engine, minilm, PARAPHRASES)
    assert minilm_paraphrases >= 0.8 and minilm_paraphrases >= hashing_paraphrases + 0.6, (minilm_paraphrases, hashing_paraphrases)
    assert first_rate(engine, minilm, NAMES) == 1.0
    # unchanged chunks are never embedded again
    again = service.embedding_stage(engine, "labeled", minilm)
    assert again.embedded == again.replaced == 0


def test_items_too_short_for_knowledge_are_found_by_meaning_too(tmp_path, sqlite_url, semantic_available):
    engine = migrated_labeled_store(tmp_path, sqlite_url)  # every document shorter than knowledge_min_chars: no chunk
    minilm = get_provider("minilm")
    counts = service.embedding_stage(engine, "short", minilm)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(KNOWLEDGE)).scalar_one() == 0
        models = dict(conn.execute(select(CONTENT_VECTORS.c.model, func.count()).group_by(CONTENT_VECTORS.c.model)).tuples().all())
    assert models == {"all-MiniLM-L6-v2": len(DOCS)} and counts.short_items == len(DOCS)  # the migration (hashing) left none
    assert first_rate(engine, minilm, PARAPHRASES) >= 0.8 and first_rate(engine, minilm, NAMES) == 1.0
    assert service.embedding_stage(engine, "short", minilm).short_items == 0  # unchanged items are never embedded again


def short_items_without_vector(engine) -> int:
    """Content items with text, no chunk and no vector of their current version."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "select count(*) from content_items c where coalesce(c.content, '') <> '' "
                "and not exists (select 1 from knowledge_items k where k.content_item_id = c.id) "
                "and not exists (select 1 from content_vectors v where v.content_item_id = c.id and v.record_hash = c.record_hash)"
            )
        ).scalar_one()


def test_short_items_vectors_follow_incremental_runs_and_rollbacks_exactly(tmp_path, target_url, instance, semantic_available):
    from migration_assets.rollback import rollback
    from migration_assets_tests.test_pipeline import materialize
    from migration_assets_tests.test_search import write_store as help_desk

    static = get_provider("minilm-static")
    engine = get_engine(target_url)

    def similarity(query: str, legacy_id: str) -> float | None:
        results = search(engine, query, provider=static, limit=50)["results"]
        return next((r["similarity"] for r in results if r["legacy_id"] == legacy_id), None)

    source = help_desk(tmp_path / "store")  # every item shorter than knowledge_min_chars
    first_run = materialize(source, tmp_path / "bk", target_url, instance, provider="minilm-static")
    assert first_run.success and short_items_without_vector(engine) == 0
    old = "Install the WireGuard client, import the profile named corp-gw-7, and keep the tunnel up while you work."
    new = "Use the Tailscale agent now; the tunnel is gone."
    before = similarity(old, "kb/vpn.md#0")
    (source / "kb" / "vpn.md").write_text(f"---\ntitle: Connecting from home\n---\n{new}\n")
    (source / "fresh.txt").write_text("A brand new note about the Okavango expedition.\n")
    (source / "notes.txt").unlink()
    second = materialize(source, tmp_path / "bk", target_url, instance, incremental=True, prune_removed=True, provider="minilm-static")
    assert second.success and short_items_without_vector(engine) == 0
    # the edited item's vector is its new text's; the old one no longer counts
    assert similarity(new, "kb/vpn.md#0") > similarity(old, "kb/vpn.md#0") and similarity(old, "kb/vpn.md#0") != before
    assert similarity("A brand new note about the Okavango expedition.", "fresh.txt#0") is not None
    # undo the second run: the restored version's own vector counts again, the undone ones never
    assert rollback(engine, None, target_url, run_id=second.run_id, confirm=True).applied
    assert similarity(old, "kb/vpn.md#0") == before and before > similarity(new, "kb/vpn.md#0")
    assert similarity("A brand new note about the Okavango expedition.", "fresh.txt#0") is None
    # undo the first: no vector is left
    assert rollback(engine, None, target_url, run_id=first_run.run_id, confirm=True).applied
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CONTENT_VECTORS)).scalar_one() == 0


def test_the_transformer_in_worker_processes_after_it_ran_here(labeled, semantic_available, monkeypatch):
    """Torch's OpenMP threads, once used in a process, hang a child forked from it: workers for
    the transformer start from a fresh interpreter, and each takes its share of the cores."""
    from concurrent.futures import ThreadPoolExecutor

    from migration_assets.embeddings.base import for_workers
    from migration_assets.embeddings.minilm import MiniLMEmbedder

    minilm = MiniLMEmbedder()
    words = " ".join(text for _, text in DOCS.values()).split()
    minilm.embed([" ".join(words[i : i + 40 + i % 160]) for i in range(0, 192 * 7, 7)])  # torch's threads at work here
    shared, context = for_workers(minilm, 2)
    assert shared is not None and shared.threads >= 1 and minilm.threads is None
    assert context is not None and context.get_start_method() == "forkserver"
    monkeypatch.setattr(service, "FRESH_WORKERS_WORTH", 0)  # workers even for these few chunks (a small stage stays in-process)
    with ThreadPoolExecutor(1) as waiting:
        counts = waiting.submit(service.embedding_stage, labeled, "workers", MiniLMEmbedder(), workers=2).result(timeout=300)
    with labeled.connect() as conn:
        chunks = conn.execute(select(func.count()).select_from(KNOWLEDGE)).scalar_one()
    assert counts.embedded == chunks > 0


def test_the_fast_path_gives_the_vectors_of_the_plain_model(semantic_available):
    from migration_assets.embeddings.minilm import MiniLMEmbedder

    texts = [title + "\n\n" + content for title, content in list(DOCS.values())[:12]]
    fast, plain = MiniLMEmbedder().embed(texts), MiniLMEmbedder(fast=False).embed(texts)
    assert fast.shape == (12, 384) and np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-5)
    assert float(np.min(np.sum(fast * plain, axis=1))) > 0.999


def test_the_static_model_is_distilled_once_cached_and_fast_to_load(tmp_path, monkeypatch, labeled, semantic_available):
    from migration_assets.embeddings.minilm import StaticMiniLMEmbedder

    monkeypatch.setenv("MIGRATION_MODEL_CACHE", str(tmp_path / "models"))
    static = StaticMiniLMEmbedder()
    vectors = static.embed(["a heavy frying pan", "boiling water for tea"])
    assert vectors.shape == (2, 256) and (static.cached_path() / "config.json").is_file()
    stamp = (static.cached_path() / "config.json").stat().st_mtime_ns
    again = StaticMiniLMEmbedder().embed(["a heavy frying pan", "boiling water for tea"])  # loaded, not distilled
    assert np.allclose(vectors, again) and (static.cached_path() / "config.json").stat().st_mtime_ns == stamp
    service.embedding_stage(labeled, "labeled", static)
    assert first_rate(labeled, static, NAMES) == 1.0 and first_rate(labeled, static, PARAPHRASES) >= 0.3


def test_migrate_with_the_minilm_provider_records_its_model_with_every_vector(tmp_path, sqlite_url, semantic_available):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    sample = Path(__file__).resolve().parent.parent / "migration_assets" / "sample_data" / "legacy"
    migrate = ("migrate", "--source", str(sample), "--backup", str(tmp_path / "bk"), "--embedding-provider")
    done = run(*migrate, "minilm", "--json", home=tmp_path, url=sqlite_url)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)["data"]
    assert all(check["passed"] for check in status["integrity"])
    with get_engine(sqlite_url).connect() as conn:
        assert set(conn.execute(select(EMBEDDINGS.c.model, EMBEDDINGS.c.dimension)).tuples()) == {("all-MiniLM-L6-v2", 384)}
    bad = run(*migrate, "bert-9", home=tmp_path, url=sqlite_url)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown embedding provider" in bad.stderr
