"""Dagster resources: the run's MigrationConfig, the target database and the embedding model.

Defaults come from the environment (``MIGRATION_SOURCE_DIR``, ``MIGRATION_BACKUP_DIR``,
``MIGRATION_RULES_FILE``, ``DATABASE_URL``) so "Materialize all" works in the UI without
typing; run config overrides.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from sqlalchemy import Engine

from migration_assets.config import (
    MigrationConfig,
    backup_directory_from_env,
    database_url_from_env,
    embedding_provider_from_env,
    rules_file_from_env,
    source_directory_from_env,
)
from migration_assets.embeddings import EmbeddingProvider, get_provider
from migration_assets.store.database import get_engine, redact_url


class MigrationResource(dg.ConfigurableResource, MigrationConfig):
    """The spec's MigrationConfig as a resource (same fields, same defaults)."""

    def settings(self) -> MigrationConfig:
        return MigrationConfig(**{name: getattr(self, name) for name in MigrationConfig.model_fields})


class TargetDatabase(dg.ConfigurableResource):
    """The unified target database; ``url`` is any SQLAlchemy URL (SQLite or PostgreSQL)."""

    url: str

    def engine(self) -> Engine:
        return get_engine(self.url)

    def display_url(self) -> str:
        return redact_url(self.url)


class EmbeddingModel(dg.ConfigurableResource):
    """Which embedding provider turns knowledge chunks into vectors: ``hashing`` (the default),
    ``minilm`` or ``minilm-static`` (the ``semantic`` extra); ``$MIGRATION_EMBEDDING_PROVIDER``
    where the resource is built from the environment."""

    provider: str = "hashing-trigram-256"

    def load(self) -> EmbeddingProvider:
        return get_provider(self.provider)


def default_resources() -> dict[str, Any]:
    """Resources configured from the environment, for the UI, the daemon and the CLI alike."""
    return {
        "migration": MigrationResource(
            source_directory=source_directory_from_env(), backup_directory=backup_directory_from_env(), rules_file=rules_file_from_env()
        ),
        "target": TargetDatabase(url=database_url_from_env()),
        "embedding_model": EmbeddingModel(provider=embedding_provider_from_env()),
    }
