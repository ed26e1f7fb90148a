"""What an embedding provider is, and how one is chosen by name."""

from __future__ import annotations

import copy
import multiprocessing
import os
import pickle
from collections.abc import Sequence
from multiprocessing.context import BaseContext
from typing import Protocol

import numpy as np


class EmbeddingProvider(Protocol):
    """Maps texts to unit-length float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """The model: recorded with every vector; vectors of different models are never compared."""
        ...

    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimension)``."""
        ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def passage(provider: EmbeddingProvider, title: str | None, text: str) -> str:
    """What a provider embeds for a chunk: a semantic provider (``embeds_titles``) reads the
    item's title before the chunk, which often says more than the chunk itself; the hashing
    embedder reads the chunk alone."""
    return f"{title}\n\n{text}" if title and getattr(provider, "embeds_titles", False) else text


def is_semantic(provider: EmbeddingProvider) -> bool:
    """Whether ``provider`` embeds meaning (``semantic = True``: the MiniLM providers) rather than
    spelling (the hashing embedder, which the full-text index already covers)."""
    return bool(getattr(provider, "semantic", False))


def can_send(provider: EmbeddingProvider | None) -> bool:
    """Whether ``provider`` can be sent to a worker process (a model holding a GPU handle, say,
    cannot)."""
    try:
        pickle.dumps(provider)
    except Exception:
        return False
    return True


def for_workers(provider: EmbeddingProvider | None, workers: int) -> tuple[EmbeddingProvider | None, BaseContext | None]:
    """``provider`` as ``workers`` worker processes should each hold it, and the multiprocessing
    context to start them in (None: the default, fork). A provider with its own thread pool
    (``threads``: the transformer's) gets a share of the cores in each worker, so the workers do
    not fight over them; one whose threads do not survive a fork (``fork_safe = False``: torch's
    OpenMP pool, once used in the parent, hangs a forked child) gets workers started from a fresh
    interpreter (forkserver)."""
    if provider is None:
        return None, None
    if getattr(provider, "threads", False) is None:
        provider = copy.copy(provider)
        provider.threads = max(1, len(os.sched_getaffinity(0)) // max(1, workers))  # type: ignore[attr-defined]
    context = None if getattr(provider, "fork_safe", True) else multiprocessing.get_context("forkserver")
    return provider, context


ALIASES = {"hashing": "hashing-trigram-256"}


def get_provider(name: str = "hashing-trigram-256") -> EmbeddingProvider:
    """The provider registered under ``name``: ``hashing`` (``hashing-trigram-<dimension>``, the
    default, lexical, no download), ``minilm`` (the all-MiniLM-L6-v2 transformer) or
    ``minilm-static`` (a static model distilled from it); the semantic two need the
    ``semantic`` extra."""
    name = ALIASES.get(name, name)
    if name.startswith("hashing-trigram-"):
        from migration_assets.embeddings.hashing import HashingEmbedder

        return HashingEmbedder(dimension=int(name.rsplit("-", 1)[1]))
    if name in ("minilm", "all-MiniLM-L6-v2"):
        from migration_assets.embeddings.minilm import MiniLMEmbedder, model_path

        model_path()  # one line saying what to install, now rather than at the first chunk
        return MiniLMEmbedder()
    if name in ("minilm-static", "all-MiniLM-L6-v2-static-256"):
        from migration_assets.embeddings.minilm import StaticMiniLMEmbedder, _require

        _require("minilm-static", "model2vec")
        return StaticMiniLMEmbedder()
    raise ValueError(f"unknown embedding provider '{name}' (known: hashing, hashing-trigram-<dimension>, minilm, minilm-static)")
