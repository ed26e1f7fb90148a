"""What a record derives for the target beside its content item: its knowledge chunks and their
vectors, computed where the record is parsed, while it is in memory.

The parse workers cut and embed the records of each batch, and the batch's write stores them
with the content items in one transaction, so that the knowledge and embedding stages only
repair what is stale (content changed without a new parse, a different model, a crash).
Nothing here knows about Dagster or databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from migration_assets.embeddings import EmbeddingProvider, chunk_text
from migration_assets.embeddings.base import can_send, passage
from migration_assets.records import LegacyRecord

Bounds = list[tuple[int, int, int]]
"""A record's chunks as (chunk index, start, end): characters of its content."""


@dataclass(frozen=True)
class Derivation:
    """How records become knowledge: content of at least ``min_chars`` characters is cut into
    chunks of about ``chunk_chars``, and each chunk embedded by ``provider`` (None: the vectors are
    left to the embeddings stage)."""

    min_chars: int
    chunk_chars: int
    provider: EmbeddingProvider | None = None

    def sendable(self) -> Derivation:
        """This derivation as a worker process can receive it: without a provider that cannot be
        sent to another process (a model holding a GPU handle, say)."""
        return self if can_send(self.provider) else Derivation(self.min_chars, self.chunk_chars, None)


@dataclass
class DerivedRecords:
    """The chunks of a batch's records, keyed by (source path, record index) with the record hash
    of the version cut, and one vector per chunk in the same order (``first`` is a record's
    first row in ``vectors``)."""

    chunks: dict[tuple[str, int], tuple[str, int, Bounds]] = field(default_factory=dict)  # → (record hash, first, bounds)
    model: str | None = None
    vectors: np.ndarray | None = None

    def of(self, record: LegacyRecord) -> tuple[Bounds, np.ndarray | None] | None:
        """The chunks (and vectors) cut from exactly this version of ``record``, if any were."""
        found = self.chunks.get((record.source_path, record.record_index))
        if found is None or found[0] != record.record_hash:
            return None
        _, first, bounds = found
        vectors = None if self.vectors is None else self.vectors[first : first + len(bounds)]
        return bounds, vectors


def derive(records: Sequence[LegacyRecord], derivation: Derivation) -> DerivedRecords:
    """Cut every record with enough content into chunks and embed them, in one call of the provider."""
    derived = DerivedRecords(model=derivation.provider.name if derivation.provider else None)
    texts: list[str] = []
    for record in records:
        content = record.content or ""
        if len(content) < derivation.min_chars:
            continue
        chunks = chunk_text(content, derivation.chunk_chars)
        derived.chunks[(record.source_path, record.record_index)] = (record.record_hash, len(texts), [(c.index, c.start, c.end) for c in chunks])
        texts += [passage(derivation.provider, record.title, c.text) if derivation.provider else c.text for c in chunks]
    provider = derivation.provider
    if provider is not None:
        embedded = provider.embed(texts) if texts else np.zeros((0, provider.dimension))
        derived.vectors = np.asarray(embedded, dtype=np.float32).reshape(len(texts), provider.dimension)
    return derived
