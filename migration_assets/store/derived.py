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
from typing import Any, TypeVar

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
from sqlalchemy.engine import Dialect

from migration_assets.backup import Journal
from migration_assets.embeddings import EmbeddingProvider
from migration_assets.embeddings.base import is_semantic
from migration_assets.store.bulk import assign_ids, bulk_insert, copy_vectors, insert_columns, reserve_ids
from migration_assets.store.database import serialise_writes
from migration_assets.store.dependencies import depend_on_chunks_of, depend_on_rows
from migration_assets.store.tables import CONTENT, CONTENT_VECTORS, EMBEDDINGS, KNOWLEDGE
from migration_assets.store.workers import ItemCut, derived_work

R = TypeVar("R")


@dataclass
class KnowledgeCounts:
    items: int = 0
    chunks: int = 0
    removed_items: int = 0


@dataclass
class EmbeddingCounts:
    embedded: int = 0
    replaced: int = 0
    short_items: int = 0  # content items without chunks given a vector of their own (``content_vectors``)


def _stale_content(min_chars: int):  # type: ignore[no-untyped-def]
    """Content items long enough for knowledge whose first chunk is missing or was cut from an
    older version of the record (chunks carry the title too, so any change of the record counts)."""
    fresh = exists().where(
        KNOWLEDGE.c.content_item_id == CONTENT.c.id,
        KNOWLEDGE.c.chunk_index == 0,
        KNOWLEDGE.c.source_hash == CONTENT.c.record_hash,
    )
    return and_(CONTENT.c.content_length >= min_chars, ~fresh)


def _delete_chunks_of(conn: Connection, run_id: str, item_ids: Any, journal: Journal | None) -> int:
    """Delete the chunks of these content items (a list of ids or a select of them), journalled
    first, on behalf of ``run_id`` (which then depends on the runs that wrote them); returns how many."""
    depend_on_chunks_of(conn, run_id, item_ids)
    if journal:
        journal.deleting_chunks(conn, list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.content_item_id.in_(item_ids))).scalars()))
    return conn.execute(delete(KNOWLEDGE).where(KNOWLEDGE.c.content_item_id.in_(item_ids))).rowcount or 0


def prune_short_content_knowledge(conn: Connection, run_id: str, min_chars: int, journal: Journal | None = None) -> int:
    """Knowledge of items whose content is now below the threshold is no longer knowledge."""
    short = select(CONTENT.c.id).where(CONTENT.c.content_length < min_chars, exists().where(KNOWLEDGE.c.content_item_id == CONTENT.c.id))
    item_ids = list(conn.execute(short).scalars())  # after a run's own writes, usually none
    return sum(_delete_chunks_of(conn, run_id, item_ids[i : i + 500], journal) for i in range(0, len(item_ids), 500))


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
        counts.removed_items = prune_short_content_knowledge(conn, run_id, min_chars, journal)
    # SQLite slices a chunk's text out of its content faster than the text can come through
    # this process; PostgreSQL (long content compressed, read whole for each slice) takes it by COPY
    with_text = engine.dialect.name != "sqlite"

    def stale(conn: Connection, after: int) -> list[int]:
        query = select(CONTENT.c.id).where(_stale_content(min_chars), CONTENT.c.id > after).order_by(CONTENT.c.id).limit(batch_size)
        return list(conn.execute(query).scalars().all())

    def write(cuts: list[ItemCut]) -> None:
        _write_chunks(engine, run_id, min_chars, cuts, journal, counts)

    with derived_work(engine, None, workers) as submit:
        _pipelined(engine, stale, lambda item_ids: submit("cut", item_ids, chunk_chars, with_text), write, depth=workers)
    return counts


def _pipelined(
    engine: Engine,
    next_ids: Callable[[Connection, int], list[int]],
    start: Callable[[list[int]], Future[R]],
    write: Callable[[R], None],
    *,
    depth: int,
) -> None:
    """Select batches of ids in order (``next_ids(conn, after)``), start their work ahead, at most
    ``depth + 1`` batches at a time, and write each result in order as it comes."""
    last_id = 0
    exhausted = False
    pending: deque[Future[R]] = deque()
    while pending or not exhausted:
        if not exhausted and len(pending) <= depth:
            with engine.connect() as conn:
                ids = next_ids(conn, last_id)
            if ids:
                last_id = ids[-1]
                pending.append(start(ids))
            else:
                exhausted = True
            continue
        write(pending.popleft().result())


def _write_chunks(engine: Engine, run_id: str, min_chars: int, cuts: list[ItemCut], journal: Journal | None, counts: KnowledgeCounts) -> None:
    """Replace the chunks of the items cut that are still stale. Each chunk carries the record
    hash of the version it was cut from: an item changed meanwhile stays stale for the next refresh."""
    if not cuts:
        return
    with engine.begin() as conn:
        serialise_writes(conn, "knowledge")
        if journal:
            journal.open_transaction(conn)
        cut_ids = {item_id for item_id, *_ in cuts}
        # still stale: a concurrent run may have rebuilt some meanwhile (the batch is a run of
        # ids in order: a range, not a list of thousands of parameters)
        in_batch = CONTENT.c.id.between(min(cut_ids), max(cut_ids))
        stale = {
            item_id for item_id in conn.execute(select(CONTENT.c.id).where(in_batch, _stale_content(min_chars))).scalars().all() if item_id in cut_ids
        }
        if not stale:
            return
        item_ids = sorted(stale)
        _delete_chunks_of(conn, run_id, item_ids, journal)
        depend_on_rows(conn, run_id, CONTENT, CONTENT.c.id.in_(item_ids))  # chunks of another run's content
        rows = [
            {
                "content_item_id": item_id,
                "chunk_index": index,
                "title": title,
                "text": text,
                "char_start": start,
                "char_end": end,
                "source_hash": record_hash,
                "run_id": run_id,
            }
            for item_id, record_hash, title, chunks in cuts
            if item_id in stale
            for index, start, end, text in chunks
        ]
        chunk_ids = assign_ids(conn, KNOWLEDGE, rows)
        if rows and rows[0]["text"] is None:
            if _insert_sliced(conn, rows) != len(rows):  # an item changed since it was cut: not written
                chunk_ids = list(conn.execute(select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.id.in_(chunk_ids))).scalars())
        else:
            bulk_insert(conn, KNOWLEDGE, rows)
        if journal and chunk_ids:
            journal.inserted("knowledge_items", chunk_ids)
        counts.items += len(item_ids)
        counts.chunks += len(chunk_ids)


def _insert_sliced(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert chunk rows whose text the database slices out of their content item, each only
    while the item is still the version that was cut; returns how many were written."""
    sql, order = _insert_sliced_sql(conn.dialect)
    take = itemgetter(*order) if order else None
    params = []
    for row in rows:
        values = {**row, "from": row["char_start"] + 1, "length": row["char_end"] - row["char_start"]}
        params.append(take(values) if take else values)
    return conn.exec_driver_sql(sql, params).rowcount


_INSERT_SLICED = insert(KNOWLEDGE).from_select(
    ["id", "content_item_id", "chunk_index", "title", "text", "char_start", "char_end", "source_hash", "run_id"],
    select(
        bindparam("id", type_=BigInteger),
        CONTENT.c.id,
        bindparam("chunk_index", type_=Integer),
        CONTENT.c.title,
        func.substr(CONTENT.c.content, bindparam("from", type_=Integer), bindparam("length", type_=Integer)),  # characters, 1-based
        bindparam("char_start", type_=Integer),
        bindparam("char_end", type_=Integer),
        CONTENT.c.record_hash,
        bindparam("run_id", type_=String),
    ).where(CONTENT.c.id == bindparam("content_item_id", type_=BigInteger), CONTENT.c.record_hash == bindparam("source_hash", type_=String)),
)


@lru_cache(maxsize=8)
def _insert_sliced_sql(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """``_INSERT_SLICED`` compiled once for the dialect, and its positional parameter order (the
    driver then gets plain tuples, not dicts SQLAlchemy would convert row by row)."""
    compiled = _INSERT_SLICED.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None


def refresh_embeddings(
    engine: Engine, run_id: str, provider: EmbeddingProvider, *, batch_size: int = 4000, journal: Journal | None = None, workers: int = 1
) -> EmbeddingCounts:
    """Embed every knowledge chunk without a vector from ``provider``; one transaction per batch.

    Batches are read and embedded ahead in ``workers`` processes while the previous batch is
    written; each write re-checks, in its own transaction, which of its chunks still lack a
    vector (a concurrent run may have embedded or replaced some meanwhile)."""
    counts = EmbeddingCounts()

    def missing(conn: Connection, after: int) -> list[int]:
        return list(
            conn.execute(
                select(KNOWLEDGE.c.id)
                .select_from(_with_embeddings())
                .where(_missing_vector(provider), KNOWLEDGE.c.id > after)
                .order_by(KNOWLEDGE.c.id)
                .limit(batch_size)
            )
            .scalars()
            .all()
        )

    def write(result: tuple[list[int], np.ndarray]) -> None:
        _write_vectors(engine, run_id, provider, result[0], result[1], journal, counts)

    with derived_work(engine, provider, workers) as submit:
        _pipelined(engine, missing, lambda chunk_ids: submit("embed", chunk_ids), write, depth=workers)
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
            depend_on_rows(conn, run_id, EMBEDDINGS, EMBEDDINGS.c.id.in_(outdated))
            if journal:
                journal.before_change(conn, "embeddings", "delete", outdated)
            conn.execute(delete(EMBEDDINGS).where(EMBEDDINGS.c.id.in_(outdated)))
            counts.replaced += len(outdated)
        keep = [i for i, chunk_id in enumerate(chunk_ids) if chunk_id in still_missing]
        depend_on_rows(conn, run_id, KNOWLEDGE, KNOWLEDGE.c.id.in_([chunk_ids[i] for i in keep]))  # vectors of another run's chunks
        counts.embedded += _insert_vectors(conn, run_id, provider.name, [chunk_ids[i] for i in keep], vectors[keep], journal)


def _insert_vectors(conn: Connection, run_id: str, model: str, chunk_ids: list[int], vectors: np.ndarray, journal: Journal | None) -> int:
    """Insert one embedding per chunk (row ``i`` of ``vectors`` for ``chunk_ids[i]``); returns how many."""
    if not chunk_ids:
        return 0
    embedding_ids = reserve_ids(conn, EMBEDDINGS, len(chunk_ids))
    if not copy_vectors(conn, EMBEDDINGS, embedding_ids, chunk_ids, model, vectors, run_id):
        # each vector as its float32 bytes, cut from one buffer
        dimension = vectors.shape[1]
        size = 4 * dimension
        buffer = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        insert_columns(
            conn,
            EMBEDDINGS,
            {
                "id": embedding_ids,
                "knowledge_item_id": chunk_ids,
                "model": [model] * len(chunk_ids),
                "dimension": [dimension] * len(chunk_ids),
                "vector": [buffer[i * size : (i + 1) * size] for i in range(len(chunk_ids))],
                "run_id": [run_id] * len(chunk_ids),
            },
        )
    if journal:
        journal.inserted("embeddings", embedding_ids)
    return len(chunk_ids)


@dataclass
class NewKnowledge:
    """A content item just written, with the chunks (and vectors) its parse derived."""

    item_id: int
    record_hash: str
    title: str | None
    content: str
    bounds: list[tuple[int, int, int]]
    vectors: np.ndarray | None


def write_new_knowledge(
    conn: Connection, run_id: str, items: list[NewKnowledge], *, model: str | None, replaced: list[int], journal: Journal | None
) -> tuple[int, int]:
    """In the transaction that wrote these content items: replace the chunks of the items in
    ``replaced`` (updated in place) and insert every item's chunks, and their vectors when all
    items have them (from ``model``). Returns (chunks, vectors) written."""
    if replaced:
        _delete_chunks_of(conn, run_id, replaced, journal)
    chunks = [(item, index, start, end) for item in items for index, start, end in item.bounds]
    if not chunks:
        return 0, 0
    chunk_ids = reserve_ids(conn, KNOWLEDGE, len(chunks))
    insert_columns(
        conn,
        KNOWLEDGE,
        {
            "id": chunk_ids,
            "content_item_id": [item.item_id for item, _, _, _ in chunks],
            "chunk_index": [index for _, index, _, _ in chunks],
            "title": [item.title for item, _, _, _ in chunks],
            "text": [item.content[start:end] for item, _, start, end in chunks],
            "char_start": [start for _, _, start, _ in chunks],
            "char_end": [end for _, _, _, end in chunks],
            "source_hash": [item.record_hash for item, _, _, _ in chunks],
            "run_id": [run_id] * len(chunks),
        },
    )
    if journal:
        journal.inserted("knowledge_items", chunk_ids)
    vectors = [item.vectors for item in items if item.bounds]
    if model is None or any(v is None for v in vectors):
        return len(chunks), 0
    return len(chunks), _insert_vectors(conn, run_id, model, chunk_ids, np.concatenate(vectors), journal)  # type: ignore[arg-type]


def refresh_content_vectors(engine: Engine, run_id: str, provider: EmbeddingProvider, *, batch_size: int = 2000, workers: int = 1) -> int:
    """Give every content item with text but no knowledge chunk a vector of ``provider`` for its
    current version (``content_vectors``); returns how many were written.

    Per item, the vector of the latest earlier version is kept beside the current one (a
    rollback to that version finds it again); older ones, other models' and those of items that
    now have chunks (their chunks speak for them) are deleted. These vectors are derived like
    the chunks' but not journaled: search trusts one only while its item is the version it was
    made from, so a rollback can leave an item without one (found by its words until the next
    embedding stage) but never with a wrong one."""
    written = 0

    def missing(conn: Connection, after: int) -> list[int]:
        return list(
            conn.execute(
                select(CONTENT.c.id).where(_needs_item_vector(provider), CONTENT.c.id > after).order_by(CONTENT.c.id).limit(batch_size)
            ).scalars()
        )

    def write(result: tuple[list[int], list[str], np.ndarray]) -> None:
        nonlocal written
        item_ids, hashes, vectors = result
        if not item_ids:
            return
        with engine.begin() as conn:
            serialise_writes(conn, "embeddings")
            in_batch = CONTENT.c.id.between(min(item_ids), max(item_ids))
            current = dict(conn.execute(select(CONTENT.c.id, CONTENT.c.record_hash).where(in_batch, _needs_item_vector(provider))).tuples().all())
            keep = [i for i, item_id in enumerate(item_ids) if current.get(item_id) == hashes[i]]  # unchanged since read
            if not keep:
                return
            conn.execute(
                insert(CONTENT_VECTORS),
                [
                    {
                        "content_item_id": item_ids[i],
                        "record_hash": hashes[i],
                        "model": provider.name,
                        "dimension": int(vectors.shape[1]),
                        "vector": vectors[i],
                        "run_id": run_id,
                    }
                    for i in keep
                ],
            )
            written += len(keep)
            _prune_item_vectors(conn, provider.name, [item_ids[i] for i in keep])

    with derived_work(engine, provider, workers) as submit:
        _pipelined(engine, missing, lambda item_ids: submit("embed_items", item_ids), write, depth=workers)
    with engine.begin() as conn:
        serialise_writes(conn, "embeddings")
        conn.execute(delete(CONTENT_VECTORS).where(exists().where(KNOWLEDGE.c.content_item_id == CONTENT_VECTORS.c.content_item_id)))
    return written


def vectors_to_write(engine: Engine, provider: EmbeddingProvider) -> int:
    """How many vectors an embedding stage of ``provider`` would write now: chunks without one of
    its vectors and, for a semantic provider, short items without one for their current version."""
    with engine.connect() as conn:
        chunks = conn.execute(select(func.count()).select_from(_with_embeddings()).where(_missing_vector(provider))).scalar_one()
        items = conn.execute(select(func.count()).where(_needs_item_vector(provider))).scalar_one() if is_semantic(provider) else 0
    return int(chunks) + int(items)


def drop_content_vectors(engine: Engine) -> None:
    """Delete every short item's vector (a lexical provider needs none: the text index finds
    those items by their words)."""
    with engine.begin() as conn:
        serialise_writes(conn, "embeddings")
        conn.execute(delete(CONTENT_VECTORS))


def _needs_item_vector(provider: EmbeddingProvider) -> ColumnElement[bool]:
    """Content items with text (a title or content), no knowledge chunk and no vector of
    ``provider`` for their current version."""
    has_text = or_(func.coalesce(CONTENT.c.content, "") != "", func.coalesce(CONTENT.c.title, "") != "")
    has_chunks = exists().where(KNOWLEDGE.c.content_item_id == CONTENT.c.id)
    has_vector = exists().where(
        CONTENT_VECTORS.c.content_item_id == CONTENT.c.id,
        CONTENT_VECTORS.c.model == provider.name,
        CONTENT_VECTORS.c.record_hash == CONTENT.c.record_hash,
    )
    return and_(has_text, ~has_chunks, ~has_vector)


def _prune_item_vectors(conn: Connection, model: str, item_ids: list[int]) -> None:
    """Of these items' vectors, keep this model's newest two (the current version's and the
    latest earlier one's); delete the rest."""
    rows = conn.execute(
        select(CONTENT_VECTORS.c.id, CONTENT_VECTORS.c.content_item_id, CONTENT_VECTORS.c.model)
        .where(CONTENT_VECTORS.c.content_item_id.in_(item_ids))
        .order_by(CONTENT_VECTORS.c.content_item_id, CONTENT_VECTORS.c.id.desc())
    ).all()
    kept: dict[int, int] = {}
    doomed = []
    for row in rows:
        if row.model != model or kept.get(row.content_item_id, 0) >= 2:
            doomed.append(row.id)
        else:
            kept[row.content_item_id] = kept.get(row.content_item_id, 0) + 1
    if doomed:
        conn.execute(delete(CONTENT_VECTORS).where(CONTENT_VECTORS.c.id.in_(doomed)))
