"""Knowledge items and embeddings, reconciled from the content items that are in the target.

Both stages work from the database, not from what an upstream step handed over: whatever
is stale (content changed, a crash between stages, a row deleted by hand) is found and
rebuilt, so rerunning them is always safe and converges. Cutting and embedding run ahead in
worker processes (``store/workers.py``); this module only decides what is stale and writes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Join,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Dialect

from migration_assets.backup import Journal
from migration_assets.embeddings import EmbeddingProvider
from migration_assets.store.bulk import bulk_insert, reserve_ids
from migration_assets.store.database import serialise_writes
from migration_assets.store.tables import CONTENT, EMBEDDINGS, KNOWLEDGE
from migration_assets.store.workers import ItemCut, derived_work


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
    engine: Engine,
    run_id: str,
    *,
    min_chars: int,
    chunk_chars: int,
    batch_size: int = 2000,
    journal: Journal | None = None,
    workers: int = 1,
) -> KnowledgeCounts:
    """Chunk every content item whose knowledge is missing or stale; one transaction per batch.

    Batches are cut ahead in ``workers`` processes while the previous batch is written."""
    counts = KnowledgeCounts()
    with engine.begin() as conn:
        serialise_writes(conn, "knowledge")
        if journal:
            journal.open_transaction(conn)
        counts.removed_items = prune_short_content_knowledge(conn, min_chars, journal)
    last_id = 0
    exhausted = False
    pending: deque[Future[list[ItemCut]]] = deque()
    with derived_work(engine, None, workers) as submit:
        while pending or not exhausted:
            if not exhausted and len(pending) <= workers:
                with engine.connect() as conn:
                    item_ids = list(
                        conn.execute(
                            select(CONTENT.c.id).where(_stale_content(min_chars), CONTENT.c.id > last_id).order_by(CONTENT.c.id).limit(batch_size)
                        )
                        .scalars()
                        .all()
                    )
                if item_ids:
                    last_id = item_ids[-1]
                    pending.append(submit("cut", item_ids, chunk_chars))
                else:
                    exhausted = True
                continue
            _write_chunks(engine, run_id, min_chars, pending.popleft().result(), journal, counts)
    return counts


def _write_chunks(engine: Engine, run_id: str, min_chars: int, cuts: list[ItemCut], journal: Journal | None, counts: KnowledgeCounts) -> None:
    """Replace the chunks of the items cut that are still stale and still at the version that
    was cut (a changed item stays stale for the next refresh). The text of each chunk is sliced
    out of its content item by the database."""
    if not cuts:
        return
    with engine.begin() as conn:
        serialise_writes(conn, "knowledge")
        if journal:
            journal.open_transaction(conn)
        cut_hashes = {item_id: record_hash for item_id, record_hash, _ in cuts}
        # still stale (a concurrent run may have rebuilt them meanwhile) and still the version cut
        # (the batch is a run of ids in order: a range, not a list of thousands of parameters)
        in_batch = CONTENT.c.id.between(min(cut_hashes), max(cut_hashes))
        current = [
            row
            for row in conn.execute(select(CONTENT.c.id, CONTENT.c.record_hash).where(in_batch, _stale_content(min_chars))).all()
            if row.id in cut_hashes
        ]
        item_ids = [item_id for item_id, record_hash in current if cut_hashes[item_id] == record_hash]
        if not item_ids:
            return
        keep = set(item_ids)
        if journal:
            journal.deleting_chunks(conn, list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.content_item_id.in_(item_ids))).scalars()))
        conn.execute(delete(KNOWLEDGE).where(KNOWLEDGE.c.content_item_id.in_(item_ids)))
        chunks = [(item_id, record_hash, *chunk) for item_id, record_hash, item_chunks in cuts if item_id in keep for chunk in item_chunks]
        chunk_ids = reserve_ids(conn, KNOWLEDGE, len(chunks))
        if chunks:
            written = _insert_chunks(conn, run_id, chunk_ids, chunks)
            if written != len(chunks):  # an item changed since the check above (PostgreSQL, READ COMMITTED)
                chunk_ids = list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.id.in_(chunk_ids))).scalars())
            if journal:
                journal.inserted("knowledge_items", chunk_ids)
        counts.items += len(item_ids)
        counts.chunks += len(chunk_ids)


# one chunk of one content item, its text sliced out of the item's content (characters, 1-based),
# written only while the item is still at the version that was cut
_INSERT_CHUNK = insert(KNOWLEDGE).from_select(
    ["id", "content_item_id", "chunk_index", "title", "text", "char_start", "char_end", "source_hash", "run_id"],
    select(
        bindparam("id", type_=BigInteger),
        CONTENT.c.id,
        bindparam("index", type_=Integer),
        CONTENT.c.title,
        func.substr(CONTENT.c.content, bindparam("from", type_=Integer), bindparam("length", type_=Integer)),
        bindparam("start", type_=Integer),
        bindparam("end", type_=Integer),
        CONTENT.c.record_hash,
        bindparam("run", type_=String),
    ).where(CONTENT.c.id == bindparam("item", type_=BigInteger), CONTENT.c.record_hash == bindparam("hash", type_=String)),
)


def _insert_chunks(conn: Connection, run_id: str, chunk_ids: list[int], chunks: list[tuple[int, str, int, int, int]]) -> int:
    """Insert the chunks (item, record hash, index, start, end) under these ids; returns how many were written."""
    if conn.dialect.name == "postgresql":  # one statement over arrays: a statement per chunk costs a round trip each
        items, hashes, indexes, starts, ends = (list(column) for column in zip(*chunks, strict=True))
        params = {"ids": chunk_ids, "items": items, "hashes": hashes, "indexes": indexes, "starts": starts, "ends": ends, "run": run_id}
        return conn.execute(_INSERT_CHUNKS_POSTGRES, params).rowcount
    sql, order = _insert_chunk_sql(conn.dialect)
    params_list = [
        _chunk_params(order, id=chunk_id, item=item_id, hash=record_hash, index=index, start=start, end=end, run=run_id)
        for chunk_id, (item_id, record_hash, index, start, end) in zip(chunk_ids, chunks, strict=True)
    ]
    return conn.exec_driver_sql(sql, params_list).rowcount


_INSERT_CHUNKS_POSTGRES = sql_text(
    """
    insert into knowledge_items (id, content_item_id, chunk_index, title, text, char_start, char_end, source_hash, run_id)
    select v.id, c.id, v.chunk_index, c.title, substr(c.content, v.char_start + 1, v.char_end - v.char_start),
           v.char_start, v.char_end, c.record_hash, :run
    from unnest(cast(:ids as bigint[]), cast(:items as bigint[]), cast(:hashes as text[]),
                cast(:indexes as integer[]), cast(:starts as integer[]), cast(:ends as integer[]))
         as v(id, item, hash, chunk_index, char_start, char_end)
    join content_items c on c.id = v.item and c.record_hash = v.hash
    """
)


def _chunk_params(order: tuple[str, ...] | None, **values: Any) -> tuple[Any, ...] | dict[str, Any]:
    values["from"], values["length"] = values["start"] + 1, values["end"] - values["start"]
    return _getter(order)(values) if order else values


@lru_cache(maxsize=8)
def _getter(order: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return itemgetter(*order)


@lru_cache(maxsize=8)
def _insert_chunk_sql(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """``_INSERT_CHUNK`` compiled once for the dialect, and its positional parameter order (the
    driver then gets plain tuples, not dicts SQLAlchemy would convert row by row)."""
    compiled = _INSERT_CHUNK.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None


def refresh_embeddings(
    engine: Engine, run_id: str, provider: EmbeddingProvider, *, batch_size: int = 4000, journal: Journal | None = None, workers: int = 1
) -> EmbeddingCounts:
    """Embed every knowledge chunk without a vector from ``provider``; one transaction per batch.

    Batches are read and embedded ahead in ``workers`` processes while the previous batch is
    written; each write re-checks, in its own transaction, which of its chunks still lack a
    vector (a concurrent run may have embedded or replaced some meanwhile)."""
    counts = EmbeddingCounts()
    last_id = 0
    exhausted = False
    pending: deque[Future[tuple[list[int], np.ndarray]]] = deque()
    with derived_work(engine, provider, workers) as submit:
        while pending or not exhausted:
            if not exhausted and len(pending) <= workers:
                with engine.connect() as conn:
                    chunk_ids = list(
                        conn.execute(
                            select(KNOWLEDGE.c.id)
                            .select_from(_with_embeddings())
                            .where(_missing_vector(provider), KNOWLEDGE.c.id > last_id)
                            .order_by(KNOWLEDGE.c.id)
                            .limit(batch_size)
                        )
                        .scalars()
                        .all()
                    )
                if chunk_ids:
                    last_id = chunk_ids[-1]
                    pending.append(submit("embed", chunk_ids))
                else:
                    exhausted = True
                continue
            embedded_ids, vectors = pending.popleft().result()
            _write_vectors(engine, run_id, provider, embedded_ids, vectors, journal, counts)
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
        if not chunk_ids:
            return
        # the batch is a run of ids in order: a range, not a list of thousands of parameters
        wanted = set(chunk_ids)
        found = conn.execute(
            select(KNOWLEDGE.c.id, EMBEDDINGS.c.id.label("embedding_id"))
            .select_from(_with_embeddings())
            .where(_missing_vector(provider), KNOWLEDGE.c.id.between(min(chunk_ids), max(chunk_ids)))
        ).all()
        still_missing = {row.id: row.embedding_id for row in found if row.id in wanted}
        outdated = [embedding_id for embedding_id in still_missing.values() if embedding_id is not None]
        if outdated:
            if journal:
                journal.before_change(conn, "embeddings", "delete", outdated)
            conn.execute(delete(EMBEDDINGS).where(EMBEDDINGS.c.id.in_(outdated)))
            counts.replaced += len(outdated)
        # each vector as its float32 bytes, cut from one buffer
        size = 4 * provider.dimension
        buffer = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        rows = [
            {
                "knowledge_item_id": chunk_id,
                "model": provider.name,
                "dimension": provider.dimension,
                "vector": buffer[i * size : (i + 1) * size],
                "run_id": run_id,
            }
            for i, chunk_id in enumerate(chunk_ids)
            if chunk_id in still_missing
        ]
        for row, embedding_id in zip(rows, reserve_ids(conn, EMBEDDINGS, len(rows)), strict=True):
            row["id"] = embedding_id
        bulk_insert(conn, EMBEDDINGS, rows)
        if journal and rows:
            journal.inserted("embeddings", [row["id"] for row in rows])
        counts.embedded += len(rows)
