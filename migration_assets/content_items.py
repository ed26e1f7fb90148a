"""Reading what landed: content items page by page (filtered by source, format, type or run),
and one item, by id or legacy id, with its knowledge chunks. What the spec's workflow "checks
the database" with; the API's ``/api/v1/content/items``. Plain Python, no Dagster."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, RowMapping, func, select

from migration_assets.documents import iso
from migration_assets.store.tables import CONTENT, EMBEDDINGS, KNOWLEDGE

EXCERPT_CHARS = 280


class UnknownItem(LookupError):
    """No content item of that id or legacy id."""


def _item(row: RowMapping, *, whole: bool) -> dict[str, Any]:
    content = row["content"] or ""
    item: dict[str, Any] = {
        "id": row["id"],
        "legacy_id": row["legacy_id"],
        "source_root": row["source_root"],
        "source_path": row["source_path"],
        "source_format": row["source_format"],
        "title": row["title"],
        "url": row["url"],
        "content_type": row["content_type"],
        "category": row["category"],
        "tags": list(row["tags"] or []),
        "metadata": row["metadata"] or {},
        "content_length": row["content_length"],
        "created_at": iso(row["created_at"]),
        "migrated_at": iso(row["migrated_at"]),
        "updated_at": iso(row["updated_at"]),
        "run_id": row["run_id"],
    }
    if whole:
        item["content"] = content
    else:
        item["excerpt"] = content if len(content) <= EXCERPT_CHARS else content[:EXCERPT_CHARS] + "…"
    return item


def list_items(
    engine: Engine,
    *,
    page: int = 1,
    per_page: int = 50,
    source: str | None = None,
    source_format: str | None = None,
    content_type: str | None = None,
    run: str | None = None,
) -> dict[str, Any]:
    """One page of content items in id order, with the total that match the filters."""
    where = [
        column == wanted
        for column, wanted in (
            (CONTENT.c.source_root, source),
            (CONTENT.c.source_format, source_format),
            (CONTENT.c.content_type, content_type),
            (CONTENT.c.run_id, run),
        )
        if wanted is not None
    ]
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(CONTENT).where(*where)).scalar_one()
        rows = conn.execute(select(CONTENT).where(*where).order_by(CONTENT.c.id).limit(per_page).offset((page - 1) * per_page)).mappings().all()
    return {
        "items": [_item(row, whole=False) for row in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": (total + per_page - 1) // per_page,
        "filters": {"source": source, "format": source_format, "type": content_type, "run": run},
    }


def get_item(engine: Engine, *, item_id: int | None = None, legacy_id: str | None = None) -> dict[str, Any]:
    """One content item whole, by id or by legacy id, with its knowledge chunks (and whether each
    has its embedding)."""
    column, wanted = (CONTENT.c.id, item_id) if item_id is not None else (CONTENT.c.legacy_id, legacy_id)
    with engine.connect() as conn:
        row = conn.execute(select(CONTENT).where(column == wanted)).mappings().first()
        if row is None:
            what = f"id {item_id}" if item_id is not None else f"legacy id {legacy_id!r}"
            raise UnknownItem(f"no content item of {what}")
        chunks = conn.execute(
            select(KNOWLEDGE, EMBEDDINGS.c.model.label("embedding_model"))
            .select_from(KNOWLEDGE.outerjoin(EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id == KNOWLEDGE.c.id))
            .where(KNOWLEDGE.c.content_item_id == row["id"])
            .order_by(KNOWLEDGE.c.chunk_index)
        ).mappings()
        knowledge = [
            {
                "id": chunk["id"],
                "chunk_index": chunk["chunk_index"],
                "title": chunk["title"],
                "text": chunk["text"],
                "char_start": chunk["char_start"],
                "char_end": chunk["char_end"],
                "embedding_model": chunk["embedding_model"],
                "run_id": chunk["run_id"],
            }
            for chunk in chunks
        ]
    return {**_item(row, whole=True), "knowledge_items": knowledge}
