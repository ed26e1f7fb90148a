"""Turning knowledge chunks into vectors: the provider interface, the default provider, chunking."""

from migration_assets.embeddings.base import EmbeddingProvider, get_provider
from migration_assets.embeddings.chunking import Chunk, chunk_text

__all__ = ["Chunk", "EmbeddingProvider", "chunk_text", "get_provider"]
