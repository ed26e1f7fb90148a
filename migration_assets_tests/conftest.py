"""Shared fixtures: corpora built in tmp dirs, target databases, Dagster instances."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from migration_assets.config import MigrationConfig

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


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'target.db'}"


@pytest.fixture
def instance(tmp_path: Path) -> dg.DagsterInstance:
    """A real, persistent Dagster instance in a tmp DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def config_for(source: Path, backup: Path, **overrides: Any) -> MigrationConfig:
    return MigrationConfig(source_directory=str(source), backup_directory=str(backup), **overrides)
