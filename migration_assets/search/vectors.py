"""The vector side of search: cosine similarity between the query's vector and the stored
vectors of knowledge chunks, of the same model only (vectors of different models are never
compared), a content item scoring as its best chunk.

``VectorIndex`` is the one interface; ``NumpyVectorIndex`` holds a model's vectors in memory
(float32, unit length: a matrix product ranks them), loaded once and loaded again only when
the embeddings change. A server-side index (pgvector, sqlite-vec) can replace it behind the
same interface."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import Connection, Engine, Select, func, select

from migration_assets.embeddings.base import unit_rows
from migration_assets.store.tables import EMBEDDINGS, KNOWLEDGE


class VectorIndex(Protocol):
    def ranking(self, conn: Connection, vector: np.ndarray, allowed: Select[tuple[int]] | None, limit: int) -> list[tuple[int, float]]:
        """Content item ids with their best chunk's similarity to ``vector``, best first."""
        ...


@dataclass
class _Loaded:
    marker: tuple[int, int, int]
    item_ids: np.ndarray  # the content item of each row
    chunk_ids: np.ndarray
    matrix: np.ndarray  # rows: unit vectors


class NumpyVectorIndex:
    """A model's vectors in memory, reloaded when the model's embeddings change (count, largest
    id or sum of ids differ)."""

    _cache: dict[tuple[str, str], _Loaded] = {}
    _lock = threading.Lock()

    def __init__(self, engine: Engine, model: str) -> None:
        self.engine = engine
        self.model = model

    def _marker(self, conn: Connection) -> tuple[int, int, int]:
        row = conn.execute(
            select(func.count(), func.coalesce(func.max(EMBEDDINGS.c.id), 0), func.coalesce(func.sum(EMBEDDINGS.c.id), 0)).where(
                EMBEDDINGS.c.model == self.model
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    def _loaded(self, conn: Connection) -> _Loaded:
        key = (str(self.engine.url), self.model)
        marker = self._marker(conn)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.marker == marker:
                return cached
        rows = conn.execute(
            select(KNOWLEDGE.c.content_item_id, KNOWLEDGE.c.id, EMBEDDINGS.c.vector)
            .join(EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id == KNOWLEDGE.c.id)
            .where(EMBEDDINGS.c.model == self.model)
        ).all()
        if rows:
            matrix = unit_rows(np.vstack([np.asarray(r[2], dtype=np.float32) for r in rows]))
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        loaded = _Loaded(marker, np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.int64), matrix)
        with self._lock:
            self._cache[key] = loaded
        return loaded

    def ranking(self, conn: Connection, vector: np.ndarray, allowed: Select[tuple[int]] | None, limit: int) -> list[tuple[int, float]]:
        loaded = self._loaded(conn)
        if not len(loaded.item_ids) or loaded.matrix.shape[1] != vector.shape[0]:
            return []
        query = vector.astype(np.float32) / (np.linalg.norm(vector) or 1.0)
        scores = loaded.matrix @ query
        items = loaded.item_ids
        if allowed is not None:
            keep = np.isin(items, np.fromiter(conn.execute(allowed).scalars(), dtype=np.int64))
            scores, items = scores[keep], items[keep]
        best: dict[int, float] = {}
        for index in np.argsort(-scores, kind="stable"):
            if scores[index] <= 0:  # unrelated (or opposed): not a match
                break
            item = int(items[index])
            if item not in best:
                best[item] = float(scores[index])
                if len(best) >= limit:
                    break
        return list(best.items())
