"""Hybrid search: the vector ranking and the full-text ranking fused by reciprocal rank (each
list gives an item ``1 / (60 + rank)``), so that meaning (vectors) and exact names and codes
(the text index) both find what they should. Filters narrow both sides alike."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, exists, func, select, text

from migration_assets.embeddings import EmbeddingProvider
from migration_assets.search import fulltext
from migration_assets.search.vectors import NumpyVectorIndex, VectorIndex
from migration_assets.store.tables import CONTENT

RRF_K = 60
CANDIDATES = 100  # from each side
SNIPPET_CHARS = 240


@dataclass(frozen=True)
class SearchFilters:
    source: str | None = None
    format: str | None = None
    type: str | None = None
    category: str | None = None
    tag: str | None = None

    def allowed(self, conn: Connection) -> Select[tuple[int]] | None:
        """The ids of the content items the filters let through (None: all of them)."""
        where: list[ColumnElement[bool]] = [
            col == wanted
            for col, wanted in (
                (CONTENT.c.source_root, self.source),
                (CONTENT.c.source_format, self.format),
                (CONTENT.c.content_type, self.type),
                (CONTENT.c.category, self.category),
            )
            if wanted is not None
        ]
        if self.tag is not None:
            if conn.dialect.name == "sqlite":
                each = func.json_each(CONTENT.c.tags).table_valued("value")
                where.append(exists(select(1).select_from(each).where(each.c.value == self.tag)))
            else:
                contains = text("content_items.tags @> jsonb_build_array(CAST(:tag AS text))").bindparams(tag=self.tag)
                where.append(contains.self_group())  # type: ignore[arg-type]
        return select(CONTENT.c.id).where(and_(*where)) if where else None


def fuse(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: items by the sum of ``1 / (k + rank)`` over the rankings; a tie
    goes to the item an earlier ranking placed (the text index's exact words come first)."""
    scores: dict[int, float] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for order, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(item, (order, rank))
    return sorted(scores.items(), key=lambda pair: (-pair[1], first_seen[pair[0]], pair[0]))


def snippet(content: str, terms: list[str], chars: int = SNIPPET_CHARS) -> str:
    """Where the query's words first occur in the text (its start otherwise), on one line."""
    flat = re.sub(r"\s+", " ", content).strip()
    lower = flat.lower()
    hits = [i for i in (lower.find(term) for term in terms) if i >= 0]
    start = max(0, min(hits) - chars // 4) if hits else 0
    piece = flat[start : start + chars]
    return ("…" if start else "") + piece + ("…" if start + chars < len(flat) else "")


def search(
    engine: Engine,
    query: str,
    *,
    provider: EmbeddingProvider,
    limit: int = 10,
    filters: SearchFilters | None = None,
    index: VectorIndex | None = None,
) -> dict[str, Any]:
    """The ``limit`` best content items for ``query``: title, score, snippet, ids, source path,
    and where each ranked on each side."""
    filters = filters or SearchFilters()
    index = index or NumpyVectorIndex(engine, provider.name)
    with engine.connect() as conn:
        allowed = filters.allowed(conn)
        by_text = fulltext.ranking(conn, query, allowed, CANDIDATES)
        by_vector = index.ranking(conn, provider.embed([query])[0], allowed, CANDIDATES) if query.strip() else []
        fused = fuse([by_text, [item for item, _ in by_vector]])[:limit]
        rows = {
            row.id: row
            for row in conn.execute(
                select(CONTENT.c.id, CONTENT.c.legacy_id, CONTENT.c.title, CONTENT.c.source_path, CONTENT.c.source_format, CONTENT.c.content).where(
                    CONTENT.c.id.in_([item for item, _ in fused])
                )
            )
        }
    vector_rank = {item: (rank, score) for rank, (item, score) in enumerate(by_vector, start=1)}
    text_rank = {item: rank for rank, item in enumerate(by_text, start=1)}
    terms = fulltext.words(query)
    results = [
        {
            "content_item_id": item,
            "legacy_id": rows[item].legacy_id,
            "title": rows[item].title,
            "source_path": rows[item].source_path,
            "format": rows[item].source_format,
            "score": round(score, 6),
            "snippet": snippet(rows[item].content or "", terms),
            "vector_rank": vector_rank.get(item, (None, None))[0],
            "similarity": None if item not in vector_rank else round(vector_rank[item][1], 4),
            "text_rank": text_rank.get(item),
        }
        for item, score in fused
        if item in rows
    ]
    return {
        "query": query,
        "model": provider.name,
        "limit": limit,
        "filters": {k: v for k, v in asdict(filters).items() if v is not None},
        "results": results,
        "matched": {"vector": len(by_vector), "text": len(by_text)},
    }
