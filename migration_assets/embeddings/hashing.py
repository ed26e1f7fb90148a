"""The default embedder: feature hashing of character trigrams, vectorised on numpy.

It is lexical, not semantic: texts that share spelling land close together, synonyms do not.
It needs no model download, is deterministic across processes and machines, and is fast
enough to embed a whole corpus inline. Swap in a semantic provider behind the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_P1, _P2 = np.uint32(2654435761), np.uint32(2246822519)
_SLICE = 2048
# what else str.split() counts as whitespace, UTF-8 encoded: lead byte → second byte → third bytes
_WIDE_SPACES: dict[int, dict[int, tuple[int, ...] | None]] = {
    0xC2: {0x85: None, 0xA0: None},  # NEL, no-break space
    0xE1: {0x9A: (0x80,)},  # ogham space mark
    0xE2: {0x80: (*range(0x80, 0x8B), 0xA8, 0xA9, 0xAF), 0x81: (0x9F,)},  # U+2000-200A, 2028, 2029, 202F, 205F
    0xE3: {0x80: (0x80,)},  # ideographic space
}


_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # \t \n \v \f \r, \x1c-\x1f and the space
_SPACE_OR_NUL = _SPACE.copy()
_SPACE_OR_NUL[0] = True
_LEADS = np.zeros(256, dtype=bool)
_LEADS[list(_WIDE_SPACES)] = True


def _spaces(data: np.ndarray, nul_separates: bool) -> np.ndarray:
    """Which bytes are whitespace to str.split(), or NUL when it separates texts: one table
    lookup a byte. A multi-byte space is whitespace in each of its bytes, so that collapsing
    runs makes it one space."""
    space = (_SPACE_OR_NUL if nul_separates else _SPACE)[data]
    at = np.flatnonzero(_LEADS[data])
    if not at.size:
        return space
    padded = np.concatenate([data, np.zeros(2, np.uint8)])
    leads = data[at]
    for lead, seconds in _WIDE_SPACES.items():
        here = at[leads == lead]
        for second, thirds in seconds.items():
            match = here[padded[here + 1] == second]
            if thirds is not None:
                match = match[np.isin(padded[match + 2], thirds)]
            for offset in range(2 if thirds is None else 3):
                space[match + offset] = True
    return space


class HashingEmbedder:
    """Signed feature hashing of the UTF-8 byte trigrams of lower-cased, space-normalised text."""

    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8 or dimension & (dimension - 1):
            raise ValueError("dimension must be a power of two, at least 8")
        self.dimension = dimension
        self.name = f"hashing-trigram-{dimension}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # a few thousand texts at a time: the per-byte arrays below are ~25 bytes per input byte
        if len(texts) > _SLICE:
            return np.vstack([self._embed(texts[i : i + _SLICE]) for i in range(0, len(texts), _SLICE)])
        return self._embed(texts)

    @staticmethod
    def _encode(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The texts lower-cased and UTF-8 encoded, each between two separators (NUL, or a
        space when a text holds a NUL itself), and the offsets of those ``len(texts) + 1`` separators."""
        joined = "\x00".join(texts)
        if joined.count("\x00") == len(texts) - 1:
            data = np.frombuffer(("\x00" + joined.lower() + "\x00").encode("utf-8", "replace"), dtype=np.uint8)
            return data, np.flatnonzero(data == 0)
        parts = [t.lower().encode("utf-8", "replace") for t in texts]
        separators = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.fromiter((len(p) + 1 for p in parts), dtype=np.int64, count=len(parts)), out=separators[1:])
        return np.frombuffer(b" " + b" ".join(parts) + b" ", dtype=np.uint8), separators

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        n, dim = len(texts), self.dimension
        out = np.zeros((n, dim), dtype=np.float32)
        if not n:
            return out
        data, separators = self._encode(texts)
        # " ".join(text.split()) on bytes: every run of whitespace becomes its first byte, a space
        space = _spaces(data, nul_separates=data[0] == 0)
        keep = np.ones(data.size, dtype=bool)
        np.logical_and(space[1:], space[:-1], out=keep[1:])
        np.logical_not(keep[1:], out=keep[1:])
        data = np.where(space, np.uint8(32), data)[keep]
        # text i now spans bounds[i]..bounds[i+1], both separators being spaces shared with its
        # neighbours: a separator's place among the bytes kept (the last kept byte up to it)
        bounds = np.zeros(separators.size, dtype=np.int64)
        if separators.size > 1:
            np.cumsum(np.add.reduceat(keep[: separators[-1]], separators[:-1], dtype=np.int64), out=bounds[1:])
        bounds += keep[separators]
        bounds -= 1
        if data.size < 3:
            return out
        # the trigram at each position, b0 << 16 | b1 << 8 | b2: a big-endian 4-byte read, shifted
        padded = np.concatenate([data, np.zeros(1, np.uint8)])
        grams = np.ndarray(shape=(data.size - 2,), dtype=">u4", buffer=padded, strides=(1,)).astype(np.uint32)
        grams >>= np.uint32(8)
        # slot 2 * bucket + sign bit of each trigram, in a row of 2 * dim + 1 slots per text whose
        # last slot takes the trigrams that span two texts
        slots = 2 * dim + 1
        index = grams * _P2
        index >>= np.uint32(31)
        grams *= _P1
        grams >>= np.uint32(6)
        grams &= np.uint32(2 * dim - 2)
        index |= grams
        flat = np.repeat(np.arange(0, n * slots, slots, dtype=np.int64), np.diff(bounds))[: index.size]
        flat += index
        across = bounds[1:-1] - 1
        across = across[(across >= 0) & (across < index.size)]
        flat[across] = (flat[across] // slots) * slots + 2 * dim
        counts = np.bincount(flat, minlength=n * slots).reshape(n, slots)
        out[:] = counts[:, 0 : 2 * dim : 2] - counts[:, 1 : 2 * dim : 2]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
