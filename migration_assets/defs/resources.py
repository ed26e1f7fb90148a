"""Dagster resources: the run's MigrationConfig, the target database and the embedding model.

Every field has a default, so a launch may set any of them alone (the launchpad, GraphQL, a
schedule). Settings left unset are read from the environment when the run starts, never when
the definitions load, so no value of it (a database password) is shown in the UI: the source
(``MIGRATION_SOURCE_DIR``, else the bundled sample), the backups (``MIGRATION_BACKUP_DIR``, else
``.migration/backups``), the rules file (``MIGRATION_RULES_FILE``), the target (``DATABASE_URL``,
else the embedded SQLite file) and the embedding provider (``MIGRATION_EMBEDDING_PROVIDER``, else
``hashing``). Where a variable is set when the definitions load, the resource is bound to it as
a ``dg.EnvVar``: the UI shows the variable's name, not its value.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy import Engine

from migration_assets import service
from migration_assets.config import (
    MigrationConfig,
    backup_directory_from_env,
    database_url_from_env,
    embedding_provider_from_env,
    rules_file_from_env,
    source_directory_from_env,
)
from migration_assets.embeddings import EmbeddingProvider, get_provider
from migration_assets.rules import MigrationRules
from migration_assets.store.database import get_engine, redact_url


class MigrationResource(dg.ConfigurableResource, MigrationConfig):
    """The spec's MigrationConfig as a resource (same fields, same defaults); the source and
    backup folders, when not set, are read from the environment as the run starts."""

    source_directory: str | None = Field(  # type: ignore[assignment]
        default=None, description="Folder holding the legacy content store (unset: $MIGRATION_SOURCE_DIR, else the bundled sample)."
    )
    backup_directory: str | None = Field(  # type: ignore[assignment]
        default=None, description="Folder for backups, reports and staging files (unset: $MIGRATION_BACKUP_DIR, else .migration/backups)."
    )

    def settings(self) -> MigrationConfig:
        values = {name: getattr(self, name) for name in MigrationConfig.model_fields}
        values["source_directory"] = self.source_directory or source_directory_from_env()
        values["backup_directory"] = self.backup_directory or backup_directory_from_env()
        values["rules_file"] = self.rules_file or rules_file_from_env()
        return MigrationConfig(**values)

    def usable_settings(self) -> tuple[MigrationConfig, MigrationRules]:
        """The run's settings and its rules, checked before a file is read; settings that cannot
        work (a missing source, a bad rules file, an unwritable backup folder) fail the run with
        one line at its top."""
        try:
            config = self.settings()
            service.check_usable(config)
            return config, config.load_rules()
        except ValueError as exc:  # the settings' own errors (pydantic's, the rules file's, a folder's) are ValueErrors
            raise dg.Failure(description=f"the run's settings cannot be used: {' '.join(str(exc).split())}", allow_retries=False) from None


class TargetDatabase(dg.ConfigurableResource):
    """The unified target database; ``url`` is any SQLAlchemy URL (SQLite or PostgreSQL); unset:
    ``$DATABASE_URL`` as the run starts, else the embedded SQLite file."""

    url: str | None = Field(default=None, description="SQLAlchemy URL of the target (unset: $DATABASE_URL, else the embedded SQLite file).")

    def resolved_url(self) -> str:
        return self.url or database_url_from_env()

    def engine(self) -> Engine:
        return get_engine(self.resolved_url())

    def display_url(self) -> str:
        return redact_url(self.resolved_url())


class EmbeddingModel(dg.ConfigurableResource):
    """Which embedding provider turns knowledge chunks into vectors: ``hashing`` (the default),
    ``minilm`` or ``minilm-static`` (the ``semantic`` extra); unset: ``$MIGRATION_EMBEDDING_PROVIDER``."""

    provider: str | None = Field(default=None, description="hashing, minilm or minilm-static (unset: $MIGRATION_EMBEDDING_PROVIDER, else hashing).")

    def load(self) -> EmbeddingProvider:
        return get_provider(self.provider or embedding_provider_from_env())


def _bound(variable: str) -> Any:
    """``dg.EnvVar(variable)`` where it is set now (the UI shows its name), else None (the
    run reads the environment as it starts, or takes the embedded default)."""
    return dg.EnvVar(variable) if os.environ.get(variable) else None


def default_resources() -> dict[str, Any]:
    """The resources of the code location, for the UI, the daemon and the CLI alike."""
    return {
        "migration": MigrationResource(
            source_directory=_bound("MIGRATION_SOURCE_DIR"),
            backup_directory=_bound("MIGRATION_BACKUP_DIR"),
            rules_file=_bound("MIGRATION_RULES_FILE"),
        ),
        "target": TargetDatabase(url=_bound("DATABASE_URL")),
        "embedding_model": EmbeddingModel(provider=_bound("MIGRATION_EMBEDDING_PROVIDER")),
    }
