"""Knowledge items and embeddings, reconciled from the content items that are in the target.

Both stages work from the database, not from what an upstream step handed over: whatever
is stale (content changed, a crash between stages, a row deleted by hand) is found and
rebuilt, so rerunning them is always safe and converges.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, Connection, Engine, Join, and_, delete, exists, or_, select

from migration_assets.backup import Journal
from migration_assets.embeddings import EmbeddingProvider, chunk_text
from migration_assets.embeddings.pool import embedder
from migration_assets.store.bulk import bulk_insert, reserve_ids
from migration_assets.store.database import serialise_writes
from migration_assets.store.tables import CONTENT, EMBEDDINGS, KNOWLEDGE


@dataclass
class KnowledgeCounts:
    items: int = 0
    chunks: int = 0
    removed_items: int = 0


@dataclass
class EmbeddingCounts:
    embedded: int = 0
    replaced: int = 0


def _stale_content(min_chars: int):  # type: ignore[no-untyped-def]
    """Content items long enough for knowledge whose first chunk is missing or was cut from an
    older version of the record (chunks carry the title too, so any change of the record counts)."""
    fresh = exists().where(
        KNOWLEDGE.c.content_item_id == CONTENT.c.id,
        KNOWLEDGE.c.chunk_index == 0,
        KNOWLEDGE.c.source_hash == CONTENT.c.record_hash,
    )
    return and_(CONTENT.c.content_length >= min_chars, ~fresh)


def prune_short_content_knowledge(conn: Connection, min_chars: int, journal: Journal | None = None) -> int:
    """Knowledge of items whose content is now below the threshold is no longer knowledge."""
    short = select(CONTENT.c.id).where(CONTENT.c.content_length < min_chars)
    if journal:
        journal.deleting_chunks(conn, list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.content_item_id.in_(short))).scalars()))
    result = conn.execute(delete(KNOWLEDGE).where(KNOWLEDGE.c.content_item_id.in_(short)))
    return result.rowcount or 0


def refresh_knowledge_items(
    engine: Engine, run_id: str, *, min_chars: int, chunk_chars: int, batch_size: int = 2000, journal: Journal | None = None
) -> KnowledgeCounts:
    """Chunk every content item whose knowledge is missing or stale; one transaction per batch."""
    counts = KnowledgeCounts()
    with engine.begin() as conn:
        serialise_writes(conn, "knowledge")
        if journal:
            journal.open_transaction(conn)
        counts.removed_items = prune_short_content_knowledge(conn, min_chars, journal)
    last_id = 0
    while True:
        with engine.begin() as conn:
            serialise_writes(conn, "knowledge")
            if journal:
                journal.open_transaction(conn)
            rows = conn.execute(
                select(CONTENT.c.id, CONTENT.c.title, CONTENT.c.content, CONTENT.c.record_hash)
                .where(_stale_content(min_chars), CONTENT.c.id > last_id)
                .order_by(CONTENT.c.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return counts
            last_id = rows[-1].id
            item_ids = [r.id for r in rows]
            if journal:
                journal.deleting_chunks(conn, list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.content_item_id.in_(item_ids))).scalars()))
            conn.execute(delete(KNOWLEDGE).where(KNOWLEDGE.c.content_item_id.in_(item_ids)))
            chunk_rows = [
                {
                    "content_item_id": row.id,
                    "chunk_index": chunk.index,
                    "title": row.title,
                    "text": chunk.text,
                    "char_start": chunk.start,
                    "char_end": chunk.end,
                    "source_hash": row.record_hash,
                    "run_id": run_id,
                }
                for row in rows
                for chunk in chunk_text(row.content or "", chunk_chars)
            ]
            if chunk_rows:
                for chunk_row, chunk_id in zip(chunk_rows, reserve_ids(conn, KNOWLEDGE, len(chunk_rows)), strict=True):
                    chunk_row["id"] = chunk_id
                bulk_insert(conn, KNOWLEDGE, chunk_rows)
                if journal:
                    journal.inserted("knowledge_items", [chunk_row["id"] for chunk_row in chunk_rows])
            counts.items += len(rows)
            counts.chunks += len(chunk_rows)


def refresh_embeddings(
    engine: Engine, run_id: str, provider: EmbeddingProvider, *, batch_size: int = 4000, journal: Journal | None = None, workers: int = 1
) -> EmbeddingCounts:
    """Embed every knowledge chunk without a vector from ``provider``; one transaction per batch.

    Batches are read ahead and embedded in ``workers`` processes while the previous batch is
    written; each write re-checks, in its own transaction, which of its chunks still lack a
    vector (a concurrent run may have embedded or replaced some meanwhile)."""
    counts = EmbeddingCounts()
    last_id = 0
    exhausted = False
    pending: deque[tuple[list[int], Future[np.ndarray]]] = deque()
    with embedder(provider, workers) as embed_async:
        while pending or not exhausted:
            if not exhausted and len(pending) <= workers:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(KNOWLEDGE.c.id, KNOWLEDGE.c.text)
                        .select_from(_with_embeddings())
                        .where(_missing_vector(provider), KNOWLEDGE.c.id > last_id)
                        .order_by(KNOWLEDGE.c.id)
                        .limit(batch_size)
                    ).all()
                if rows:
                    last_id = rows[-1].id
                    pending.append(([r.id for r in rows], embed_async([r.text for r in rows])))
                else:
                    exhausted = True
                continue
            chunk_ids, vectors = pending.popleft()
            _write_vectors(engine, run_id, provider, chunk_ids, vectors.result(), journal, counts)
    return counts


def _with_embeddings() -> Join:
    return KNOWLEDGE.outerjoin(EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id == KNOWLEDGE.c.id)


def _missing_vector(provider: EmbeddingProvider) -> ColumnElement[bool]:
    return or_(EMBEDDINGS.c.id.is_(None), EMBEDDINGS.c.model != provider.name)


def _write_vectors(
    engine: Engine,
    run_id: str,
    provider: EmbeddingProvider,
    chunk_ids: list[int],
    vectors: np.ndarray,
    journal: Journal | None,
    counts: EmbeddingCounts,
) -> None:
    with engine.begin() as conn:
        serialise_writes(conn, "embeddings")
        if journal:
            journal.open_transaction(conn)
        found = conn.execute(
            select(KNOWLEDGE.c.id, EMBEDDINGS.c.id.label("embedding_id"))
            .select_from(_with_embeddings())
            .where(_missing_vector(provider), KNOWLEDGE.c.id.in_(chunk_ids))
        ).all()
        still_missing = {row.id: row.embedding_id for row in found}
        outdated = [embedding_id for embedding_id in still_missing.values() if embedding_id is not None]
        if outdated:
            if journal:
                journal.before_change(conn, "embeddings", "delete", outdated)
            conn.execute(delete(EMBEDDINGS).where(EMBEDDINGS.c.id.in_(outdated)))
            counts.replaced += len(outdated)
        rows = [
            {"knowledge_item_id": chunk_id, "model": provider.name, "dimension": provider.dimension, "vector": vector, "run_id": run_id}
            for chunk_id, vector in zip(chunk_ids, vectors, strict=True)
            if chunk_id in still_missing
        ]
        for row, embedding_id in zip(rows, reserve_ids(conn, EMBEDDINGS, len(rows)), strict=True):
            row["id"] = embedding_id
        bulk_insert(conn, EMBEDDINGS, rows)
        if journal and rows:
            journal.inserted("embeddings", [row["id"] for row in rows])
        counts.embedded += len(rows)
