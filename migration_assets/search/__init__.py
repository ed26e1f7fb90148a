"""Searching what landed: hybrid ranking of content items, vector similarity over the stored
embeddings (of the query's model only) fused by reciprocal rank with the database's full-text
index (SQLite FTS5, PostgreSQL tsvector), which the database keeps in step with every write
and rollback. Plain Python, no Dagster."""

from migration_assets.search.hybrid import SearchFilters, search

__all__ = ["SearchFilters", "search"]
