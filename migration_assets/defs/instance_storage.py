"""Dagster's instance storage on PostgreSQL, whatever PostgreSQL URL it is given.

dagster-postgres is written for psycopg2. SQLAlchemy 2.1 opens a plain ``postgresql://`` URL
with psycopg 3 (and Dagster's ``postgres_db:`` block builds such a URL), and with psycopg 3
Dagster's ``NOTIFY run_events, $1`` is a syntax error: every page of the UI fails, and so does
every run. ``PostgresInstanceStorage`` takes Dagster's own PostgreSQL settings (``postgres_url``
or the ``postgres_db`` block, as in Dagster's docs) and opens them with psycopg2 whatever driver
the URL names; ``deploy/postgres/dagster.yaml`` uses it:

.. code-block:: yaml

    storage:
      custom:
        module: migration_assets.defs.instance_storage
        class: PostgresInstanceStorage
        config:
          postgres_url:
            env: DAGSTER_POSTGRES_URL
"""

from __future__ import annotations

from typing import Any

from dagster._config.config_schema import UserConfigSchema
from dagster._core.storage.config import pg_config
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import get_conn_string
from sqlalchemy.engine import make_url

PSYCOPG2 = "postgresql+psycopg2"


def psycopg2_url(url: str) -> str:
    """``url`` with the psycopg2 driver, when it names PostgreSQL with no driver or psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        parsed = parsed.set(drivername=PSYCOPG2)
    return parsed.render_as_string(hide_password=False)


def instance_url(config: dict[str, Any]) -> str:
    """The psycopg2 URL of Dagster's ``postgres_url`` or ``postgres_db`` settings."""
    if config.get("postgres_url"):
        if "postgres_db" in config:
            raise ValueError("the instance's PostgreSQL storage takes postgres_url or postgres_db, not both")
        return psycopg2_url(config["postgres_url"])
    if "postgres_db" not in config:
        raise ValueError("the instance's PostgreSQL storage needs postgres_url or postgres_db")
    block = dict(config["postgres_db"])
    block["scheme"] = make_url(psycopg2_url(f"{block.get('scheme') or 'postgresql'}://x@y/z")).drivername
    return get_conn_string(**block)


class PostgresInstanceStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` opened with psycopg2 whatever driver its URL names."""

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return pg_config()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> PostgresInstanceStorage:  # type: ignore[override]
        return cls(
            inst_data=inst_data,
            postgres_url=instance_url(dict(config_value)),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
        )
