"""Embedding ahead, in worker processes, while the caller writes the previous batch.

``embedder(provider, workers)`` gives a function that takes texts and returns a future of their
vectors. With more than one worker the provider is sent once to each worker process; a provider
that cannot be sent (a model holding a GPU handle, say) embeds in the calling process instead.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from migration_assets.embeddings.base import EmbeddingProvider

EmbedAsync = Callable[[Sequence[str]], "Future[np.ndarray]"]

_provider: EmbeddingProvider | None = None


def _load(provider: EmbeddingProvider) -> None:
    global _provider
    _provider = provider


def _embed(texts: Sequence[str]) -> np.ndarray:
    assert _provider is not None, "worker started without a provider"
    return _provider.embed(texts)


def _can_send(provider: EmbeddingProvider) -> bool:
    try:
        pickle.dumps(provider)
    except Exception:
        return False
    return True


@contextlib.contextmanager
def embedder(provider: EmbeddingProvider, workers: int) -> Iterator[EmbedAsync]:
    """A function ``texts -> Future[vectors]``; in a pool of ``workers`` processes when > 1."""
    if workers <= 1 or not _can_send(provider):

        def now(texts: Sequence[str]) -> Future[np.ndarray]:
            future: Future[np.ndarray] = Future()
            try:
                future.set_result(provider.embed(texts))
            except Exception as exc:
                future.set_exception(exc)
            return future

        yield now
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_load, initargs=(provider,)) as pool:
        yield lambda texts: pool.submit(_embed, list(texts))
