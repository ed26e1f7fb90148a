"""Knowledge items and embeddings, reconciled from the content items that are in the target.

Both stages work from the database, not from what an upstream step handed over: whatever
is stale (content changed, a crash between stages, a row deleted by hand) is found and
rebuilt, so rerunning them is always safe and converges.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, exists, or_, select

from migration_assets.backup import Journal
from migration_assets.embeddings import EmbeddingProvider, chunk_text
from migration_assets.store.bulk import bulk_insert
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
    engine: Engine, run_id: str, *, min_chars: int, chunk_chars: int, batch_size: int = 500, journal: Journal | None = None
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
                bulk_insert(conn, KNOWLEDGE, chunk_rows)
                if journal:
                    journal.inserted(
                        "knowledge_items", list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.content_item_id.in_(item_ids))).scalars())
                    )
            counts.items += len(rows)
            counts.chunks += len(chunk_rows)


def refresh_embeddings(
    engine: Engine, run_id: str, provider: EmbeddingProvider, *, batch_size: int = 1000, journal: Journal | None = None
) -> EmbeddingCounts:
    """Embed every knowledge chunk without a vector from ``provider``; one transaction per batch."""
    counts = EmbeddingCounts()
    joined = KNOWLEDGE.outerjoin(EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id == KNOWLEDGE.c.id)
    missing = or_(EMBEDDINGS.c.id.is_(None), EMBEDDINGS.c.model != provider.name)
    last_id = 0
    while True:
        with engine.begin() as conn:
            serialise_writes(conn, "embeddings")
            if journal:
                journal.open_transaction(conn)
            rows = conn.execute(
                select(KNOWLEDGE.c.id, KNOWLEDGE.c.text, EMBEDDINGS.c.id.label("embedding_id"))
                .select_from(joined)
                .where(missing, KNOWLEDGE.c.id > last_id)
                .order_by(KNOWLEDGE.c.id)
                .limit(batch_size)
            ).all()
            if not rows:
                return counts
            last_id = rows[-1].id
            outdated = [r.embedding_id for r in rows if r.embedding_id is not None]
            if outdated:
                if journal:
                    journal.before_change(conn, "embeddings", "delete", outdated)
                conn.execute(delete(EMBEDDINGS).where(EMBEDDINGS.c.id.in_(outdated)))
                counts.replaced += len(outdated)
            vectors = provider.embed([r.text for r in rows])
            bulk_insert(
                conn,
                EMBEDDINGS,
                [
                    {"knowledge_item_id": r.id, "model": provider.name, "dimension": provider.dimension, "vector": vector, "run_id": run_id}
                    for r, vector in zip(rows, vectors, strict=True)
                ],
            )
            if journal:
                chunk_ids = [r.id for r in rows]
                journal.inserted(
                    "embeddings", list(conn.execute(select(EMBEDDINGS.c.id).where(EMBEDDINGS.c.knowledge_item_id.in_(chunk_ids))).scalars())
                )
            counts.embedded += len(rows)
