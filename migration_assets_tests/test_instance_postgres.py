"""The Dagster instance on PostgreSQL, as deployed: ``deploy/postgres/dagster.yaml`` with a plain
``postgresql://`` URL, a psycopg URL or Dagster's ``postgres_db:`` block; the webserver serving
the runs from it over GraphQL; an instance that cannot be used is called the instance, and a
target that shares the instance's database is refused saying why."""

from __future__ import annotations

import uuid
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from migration_assets.config import MigrationConfig
from migration_assets.runner import run_migration
from migration_assets.store.database import normalise_url
from migration_assets_tests.conftest import POSTGRES_URL
from migration_assets_tests.test_workflow import run
from migration_assets_tests.webserver import graphql, webserver

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "migration_assets" / "sample_data"


def deployed_home(tmp_path: Path, form: str = "url") -> Path:
    """A DAGSTER_HOME holding the deploy config; ``form="block"``: its ``postgres_db`` block form."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    config = (REPO / "deploy" / "postgres" / "dagster.yaml").read_text()
    if form == "block":
        config = config.replace(
            "      postgres_url:\n        env: DAGSTER_POSTGRES_URL\n",
            "      postgres_db:\n        username: {env: PG_USER}\n        hostname: {env: PG_HOST}\n"
            "        port: {env: PG_PORT}\n        db_name: {env: PG_DB}\n",
        )
        assert "postgres_db" in config
    (home / "dagster.yaml").write_text(config)
    return home


@pytest.mark.parametrize("form", ["plain", "psycopg", "psycopg2", "block"])
def test_the_deployed_instance_config_takes_any_postgresql_url_and_dagsters_block(tmp_path, monkeypatch, instance_db, postgres_url, form):
    url = make_url(instance_db)
    home = deployed_home(tmp_path, "block" if form == "block" else "url")
    if form == "block":
        for key, value in {"PG_USER": url.username, "PG_HOST": url.host, "PG_PORT": str(url.port or 5432), "PG_DB": url.database}.items():
            monkeypatch.setenv(key, str(value))
    else:
        driver = {"plain": "postgresql", "psycopg": "postgresql+psycopg", "psycopg2": "postgresql+psycopg2"}[form]
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", url.set(drivername=driver).render_as_string(hide_password=False))
    config = MigrationConfig(source_directory=str(SAMPLE), backup_directory=str(tmp_path / "bk"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        outcome = run_migration(config, postgres_url, instance=instance)  # every event stored: Dagster's NOTIFY among them
    assert outcome is not None and outcome.success, outcome
    storage = create_engine(normalise_url(instance_db))
    with storage.connect() as conn:
        runs = conn.execute(text("select run_id from runs")).scalars().all()
        events = conn.execute(text("select count(*) from event_logs where run_id = :r"), {"r": outcome.run_id}).scalar_one()
    storage.dispose()
    assert runs == [outcome.run_id] and events > 10


def test_the_webserver_serves_runs_from_the_postgresql_instance_with_a_plain_url(tmp_path, instance_db, postgres_url):
    home = deployed_home(tmp_path)
    env = {"DAGSTER_POSTGRES_URL": instance_db, "DATABASE_URL": postgres_url}
    done = run("migrate", "--source", str(SAMPLE), "--backup", str(tmp_path / "bk"), "-q", home=home, url=postgres_url, env=env)
    assert done.returncode == 0, done.stderr
    with webserver(home, env, tmp_path / "webserver.log") as url:
        runs = graphql(url, "{ runsOrError { ... on Runs { results { runId status } } } }")["runsOrError"]["results"]
        assets = graphql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"]
    assert [run["status"] for run in runs] == ["SUCCESS"]
    assert {"content_items", "knowledge_items", "embeddings"} <= {node["assetKey"]["path"][-1] for node in assets}
    assert "syntax error" not in (tmp_path / "webserver.log").read_text()


def test_an_instance_that_cannot_be_used_is_named_as_the_instance(tmp_path, postgres_available, sqlite_url):
    home = deployed_home(tmp_path)
    missing = make_url(POSTGRES_URL).set(drivername="postgresql", database=f"no_such_{uuid.uuid4().hex[:8]}")
    instance_url = {"DAGSTER_POSTGRES_URL": missing.render_as_string(hide_password=False)}
    done = run("migrate", "--source", str(SAMPLE), "--backup", str(tmp_path / "bk"), home=home, url=sqlite_url, env=instance_url)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and last.startswith("Error: the Dagster instance (") and "does not exist" in last, done.stderr
    assert "target" not in last


def test_a_target_sharing_the_instances_database_is_refused_saying_why(tmp_path, monkeypatch, instance_db):
    home = deployed_home(tmp_path)
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", instance_db)  # for this process and the CLI's
    with dg.DagsterInstance.from_config(str(home)):  # the instance's tables (and its alembic_version) first
        pass
    done = run("migrate", "--source", str(SAMPLE), "--backup", str(tmp_path / "bk"), home=home, url=instance_db)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "the target database" in last and "another application's schema version" in last, done.stderr
    assert "own database or schema" in last
