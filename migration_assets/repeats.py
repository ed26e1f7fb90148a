"""Which values occur more than once in a stream too large to hold, at eight bytes a value."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def repeated_hashes(values: Iterable[str] | Iterator[str]) -> set[int]:
    """The ``hash()`` of every value that occurs more than once (a collision only adds a
    candidate: confirm on the values themselves). Hashes are this process's own."""
    hashes = np.fromiter((hash(value) for value in values), dtype=np.int64)
    unique, counts = np.unique(hashes, return_counts=True)
    return {int(h) for h in unique[counts > 1]}
