"""What an embedding provider is, and how one is chosen by name."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Protocol

import numpy as np


class EmbeddingProvider(Protocol):
    """Maps texts to unit-length float32 vectors of a fixed dimension."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dimension)``."""
        ...


def can_send(provider: EmbeddingProvider | None) -> bool:
    """Whether ``provider`` can be sent to a worker process (a model holding a GPU handle, say,
    cannot)."""
    try:
        pickle.dumps(provider)
    except Exception:
        return False
    return True


def get_provider(name: str = "hashing-trigram-256") -> EmbeddingProvider:
    """The provider registered under ``name``; the default needs no download."""
    from migration_assets.embeddings.hashing import HashingEmbedder

    if name.startswith("hashing-trigram-"):
        return HashingEmbedder(dimension=int(name.rsplit("-", 1)[1]))
    raise ValueError(f"unknown embedding provider '{name}' (known: hashing-trigram-<dimension>)")
