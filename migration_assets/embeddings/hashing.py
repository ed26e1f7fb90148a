"""The default embedder: feature hashing of character trigrams, vectorised on numpy.

It is lexical, not semantic: texts that share spelling land close together, synonyms do not.
It needs no model download, is deterministic across processes and machines, and is fast
enough to embed a whole corpus inline. Swap in a semantic provider behind the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_P1, _P2 = np.uint32(2654435761), np.uint32(2246822519)
_SLICE = 256


class HashingEmbedder:
    """Signed feature hashing of the UTF-8 byte trigrams of lower-cased, space-normalised text."""

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8 or dimension & (dimension - 1):
            raise ValueError("dimension must be a power of two, at least 8")
        self.dimension = dimension
        self.name = f"hashing-trigram-{dimension}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # a few hundred texts at a time: the per-byte arrays below are ~40 bytes per input byte
        if len(texts) > _SLICE:
            return np.vstack([self._embed(texts[i : i + _SLICE]) for i in range(0, len(texts), _SLICE)])
        return self._embed(texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        dim = self.dimension
        out = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        encoded = [(" " + " ".join(t.lower().split()) + " ").encode("utf-8", "replace") for t in texts]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint32)
        if data.size < 3:
            return out
        grams = (data[:-2] << np.uint32(16)) | (data[1:-1] << np.uint32(8)) | data[2:]
        owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)[:-2]
        # a trigram counts only when all three bytes belong to the same text
        ends = np.cumsum(lengths)
        valid = np.ones(grams.size, dtype=bool)
        for cut in (ends - 1, ends - 2):
            cut = cut[(cut >= 0) & (cut < grams.size)]
            valid[cut] = False
        grams, owner = grams[valid], owner[valid]
        hashed = grams * _P1
        bucket = (hashed >> np.uint32(7)) & np.uint32(dim - 1)
        sign = np.where(((grams * _P2) >> np.uint32(31)) == 1, -1.0, 1.0)
        flat = np.bincount(owner * dim + bucket.astype(np.int64), weights=sign, minlength=len(texts) * dim)
        out[:] = flat.reshape(len(texts), dim)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
