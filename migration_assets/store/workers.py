"""The CPU work of the derived stages — cutting chunks, embedding them — done ahead, in worker
processes that read the texts from the target themselves.

``derived_work(engine, provider, workers)`` gives a function that submits a job and returns its
future; the caller writes one batch while the workers read and compute the next ones. A worker
reads the texts by id and sends back chunks (on SQLite only their boundaries: the caller slices
the text out of the content in SQL) or vectors. With one worker, an in-memory database or a provider that cannot be
sent to another process (a model holding a GPU handle, say), the jobs run in the caller. The
workers hold the provider as ``embeddings.base.for_workers`` prepares it (their share of the
cores; a fresh interpreter for a provider that cannot survive a fork).

Each worker opens its own connections (never one inherited from the caller) and only reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from migration_assets.embeddings import EmbeddingProvider, chunk_text
from migration_assets.embeddings.base import can_send, for_workers, passage
from migration_assets.store.database import readonly_engine
from migration_assets.store.tables import CONTENT, KNOWLEDGE

ItemCut = tuple[int, str, str | None, list[tuple[int, int, int, str | None]]]
"""(content item id, record hash of the version cut, its title, its chunks' (index, start, end, text));
the text is None when the caller slices it out of the content in SQL."""

Submit = Callable[..., "Future[Any]"]


@dataclass
class DerivedWork:
    engine: Engine
    provider: EmbeddingProvider | None = None

    def cut(self, item_ids: list[int], chunk_chars: int, with_text: bool = True) -> list[ItemCut]:
        """The chunks of these content items as they are now (those that still exist)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(CONTENT.c.id, CONTENT.c.record_hash, CONTENT.c.title, CONTENT.c.content).where(CONTENT.c.id.in_(item_ids))
            ).all()
        return [
            (
                row.id,
                row.record_hash,
                row.title,
                [(c.index, c.start, c.end, c.text if with_text else None) for c in chunk_text(row.content or "", chunk_chars)],
            )
            for row in rows
        ]

    def embed(self, chunk_ids: list[int]) -> tuple[list[int], np.ndarray]:
        """The vectors of these knowledge chunks (those that still exist), and their ids."""
        assert self.provider is not None, "embedding work needs a provider"
        with self.engine.connect() as conn:
            rows = conn.execute(select(KNOWLEDGE.c.id, KNOWLEDGE.c.title, KNOWLEDGE.c.text).where(KNOWLEDGE.c.id.in_(chunk_ids))).all()
        return [row.id for row in rows], self.provider.embed([passage(self.provider, row.title, row.text) for row in rows])

    def embed_items(self, item_ids: list[int]) -> tuple[list[int], list[str], np.ndarray]:
        """The vectors of these content items as they are now (title and text; those that still
        exist), their ids and the record hashes of the versions embedded."""
        assert self.provider is not None, "embedding work needs a provider"
        text = func.substr(func.coalesce(CONTENT.c.content, ""), 1, ITEM_TEXT_CHARS)
        with self.engine.connect() as conn:
            rows = conn.execute(select(CONTENT.c.id, CONTENT.c.record_hash, CONTENT.c.title, text).where(CONTENT.c.id.in_(item_ids))).all()
        passages = [passage(self.provider, row[2], row[3]) if row[3] else row[2] or "" for row in rows]
        return [row[0] for row in rows], [row[1] for row in rows], self.provider.embed(passages)


ITEM_TEXT_CHARS = 8_000  # of an item's text, embedded whole (a transformer reads its first 256 tokens anyway)

_work: DerivedWork | None = None


def _start(url: str, provider: EmbeddingProvider | None) -> None:
    global _work
    _work = DerivedWork(readonly_engine(url), provider)


def _run(job: str, *args: Any) -> Any:
    assert _work is not None, "worker started without its work"
    return getattr(_work, job)(*args)


@contextlib.contextmanager
def derived_work(engine: Engine, provider: EmbeddingProvider | None, workers: int) -> Iterator[Submit]:
    """``submit(job, *args) -> Future`` for the jobs of ``DerivedWork``; in ``workers`` processes when > 1."""
    database = engine.url.database or ""
    shared_file = engine.dialect.name != "sqlite" or (database not in ("", ":memory:") and not database.startswith("file:"))
    if workers <= 1 or not shared_file or not can_send(provider):
        work = DerivedWork(engine, provider)

        def now(job: str, *args: Any) -> Future[Any]:
            future: Future[Any] = Future()
            try:
                future.set_result(getattr(work, job)(*args))
            except Exception as exc:
                future.set_exception(exc)
            return future

        yield now
        return
    url = engine.url.render_as_string(hide_password=False)
    provider, context = for_workers(provider, workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start, initargs=(url, provider)) as pool:
        yield lambda job, *args: pool.submit(_run, job, *args)
