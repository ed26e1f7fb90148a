"""The vector side of search: cosine similarity between the query's vector and the stored
vectors of the same model only (vectors of different models are never compared): the vectors of
knowledge chunks, and those of content items too short for chunks (``content_vectors``); a
content item scores as its best vector.

``VectorIndex`` is the one interface; ``NumpyVectorIndex`` holds a model's vectors in memory
(float32, unit length: a matrix product ranks them), loaded once and loaded again only when
the vectors change. A short item's vector counts only while the item is still the version it was
made from: the best candidates are checked against the items as they are now. A server-side
index (pgvector, sqlite-vec) can replace it behind the same interface."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import Connection, Engine, Select, Table, func, select

from migration_assets.embeddings.base import unit_rows
from migration_assets.store.tables import CONTENT, CONTENT_VECTORS, EMBEDDINGS, KNOWLEDGE


class VectorIndex(Protocol):
    def ranking(self, conn: Connection, vector: np.ndarray, allowed: Select[tuple[int]] | None, limit: int) -> list[tuple[int, float]]:
        """Content item ids with their best vector's similarity to ``vector``, best first."""
        ...


@dataclass
class _Loaded:
    marker: tuple[int, ...]
    item_ids: np.ndarray  # the content item of each row
    versions: list[str | None]  # the record hash a short item's vector was made from; None for a chunk's
    matrix: np.ndarray  # rows: unit vectors


class NumpyVectorIndex:
    """A model's vectors in memory, reloaded when they change (in either table: count, largest id
    or sum of ids differ; ids are never reused)."""

    _cache: dict[tuple[str, str], _Loaded] = {}
    _lock = threading.Lock()

    def __init__(self, engine: Engine, model: str) -> None:
        self.engine = engine
        self.model = model

    def _marker(self, conn: Connection) -> tuple[int, ...]:
        def of(table: Table) -> tuple[int, int, int]:
            row = conn.execute(
                select(func.count(), func.coalesce(func.max(table.c.id), 0), func.coalesce(func.sum(table.c.id), 0)).where(
                    table.c.model == self.model
                )
            ).one()
            return int(row[0]), int(row[1]), int(row[2])

        return of(EMBEDDINGS) + of(CONTENT_VECTORS)

    def _loaded(self, conn: Connection) -> _Loaded:
        key = (str(self.engine.url), self.model)
        marker = self._marker(conn)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.marker == marker:
                return cached
        rows = conn.execute(
            select(KNOWLEDGE.c.content_item_id, EMBEDDINGS.c.vector)
            .join(EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id == KNOWLEDGE.c.id)
            .where(EMBEDDINGS.c.model == self.model)
        ).all()
        short = conn.execute(
            select(CONTENT_VECTORS.c.content_item_id, CONTENT_VECTORS.c.vector, CONTENT_VECTORS.c.record_hash).where(
                CONTENT_VECTORS.c.model == self.model
            )
        ).all()
        vectors = [np.asarray(r[1], dtype=np.float32) for r in rows] + [np.asarray(r[1], dtype=np.float32) for r in short]
        dimensions = {len(v) for v in vectors}
        matrix = unit_rows(np.vstack(vectors)) if vectors and len(dimensions) == 1 else np.zeros((0, 0), dtype=np.float32)
        loaded = _Loaded(
            marker,
            np.array([r[0] for r in rows] + [r[0] for r in short], dtype=np.int64),
            [None] * len(rows) + [r[2] for r in short],
            matrix,
        )
        with self._lock:
            self._cache[key] = loaded
        return loaded

    def ranking(self, conn: Connection, vector: np.ndarray, allowed: Select[tuple[int]] | None, limit: int) -> list[tuple[int, float]]:
        loaded = self._loaded(conn)
        if not len(loaded.item_ids) or loaded.matrix.shape[1] != vector.shape[0]:
            return []
        query = vector.astype(np.float32) / (np.linalg.norm(vector) or 1.0)
        scores = loaded.matrix @ query
        rows = np.arange(len(scores))
        if allowed is not None:
            keep = np.isin(loaded.item_ids, np.fromiter(conn.execute(allowed).scalars(), dtype=np.int64))
            scores, rows = scores[keep], rows[keep]
        order = np.argsort(-scores, kind="stable")
        ranked, similarity = rows[order], scores[order]
        best: dict[int, float] = {}
        window = max(4 * limit, 64)
        for start in range(0, len(ranked), window):
            piece = [(int(r), float(s)) for r, s in zip(ranked[start : start + window], similarity[start : start + window], strict=True) if s > 0]
            current = self._versions_now(conn, loaded, [r for r, _ in piece])
            for row, score in piece:
                item = int(loaded.item_ids[row])
                version = loaded.versions[row]
                if item in best or (version is not None and current.get(item) != version):
                    continue  # a short item's vector of another version of it (or of an item gone)
                best[item] = score
                if len(best) >= limit:
                    return list(best.items())
            if len(piece) < min(window, len(ranked) - start):  # similarity ≤ 0 from here on: unrelated
                break
        return list(best.items())

    @staticmethod
    def _versions_now(conn: Connection, loaded: _Loaded, rows: list[int]) -> dict[int, str]:
        """The current record hash of the short items among these rows."""
        items = {int(loaded.item_ids[r]) for r in rows if loaded.versions[r] is not None}
        if not items:
            return {}
        return dict(conn.execute(select(CONTENT.c.id, CONTENT.c.record_hash).where(CONTENT.c.id.in_(items))).tuples().all())
