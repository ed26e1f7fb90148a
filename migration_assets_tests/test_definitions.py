import subprocess
import sys
from pathlib import Path

import dagster as dg

from migration_assets.definitions import defs
from migration_assets_tests.test_workflow import run

LINEAGE = ["legacy_files", "parsed_records", "validated_records", "content_items", "knowledge_items", "embeddings", "migration_report"]


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_asset_lineage_runs_from_legacy_files_to_embeddings_and_the_report():
    graph = defs.resolve_asset_graph()
    for upstream, downstream in zip(LINEAGE, LINEAGE[1:], strict=False):
        parents = {key.to_user_string() for key in graph.get(dg.AssetKey(downstream)).parent_keys}
        assert upstream in parents, f"{downstream} should depend on {upstream}"


def test_every_asset_has_a_description_and_the_migration_group():
    graph = defs.resolve_asset_graph()
    for name in LINEAGE:
        node = graph.get(dg.AssetKey(name))
        assert node.description and node.group_name == "migration"


def test_migrate_job_selects_the_whole_lineage():
    job = defs.resolve_job_def("migrate")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} >= set(LINEAGE)


def test_integrity_checks_are_declared_on_the_assets_they_guard():
    graph = defs.resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == {
        ("content_items", "reconciliation"),
        ("content_items", "duplicate_content"),
        ("content_items", "tracking_drift"),
        ("embeddings", "relationships"),
        ("embeddings", "embeddings"),
        ("content_items", "target_tracking_drift"),  # the whole-target ones, run alone (integrity_checks)
        ("embeddings", "target_relationships"),
    }
    specs = {spec.name: spec for spec in graph.get(dg.AssetKey("content_items")).assets_def.check_specs}
    assert specs["reconciliation"].blocking and specs["reconciliation"].description


def test_record_assets_show_their_pandera_schema():
    from migration_assets.defs.assets.schemas import table_schema_of, validated_table_schema
    from migration_assets.rules import default_rules
    from migration_assets.validation import PARSED_RECORD_SCHEMA

    graph = defs.resolve_asset_graph()
    expected = {"parsed_records": table_schema_of(PARSED_RECORD_SCHEMA), "validated_records": validated_table_schema(default_rules().validation)}
    for name, schema in expected.items():
        shown = graph.get(dg.AssetKey(name)).metadata["dagster/column_schema"]
        assert shown == schema
        assert {"legacy_id", "title", "content", "url", "created_at", "tags"} <= {c.name for c in shown.columns}
    url = next(c for c in expected["validated_records"].columns if c.name == "url")
    assert any(rule.startswith("url.policy (error)") for rule in url.constraints.other)


def test_records_are_parsed_validated_and_written_in_one_step():
    graph = defs.resolve_asset_graph()
    steps = {graph.get(dg.AssetKey(name)).assets_def.op.name for name in ("parsed_records", "validated_records", "content_items")}
    assert steps == {"ingest_records"}


def test_the_workspace_file_loads_the_code_location():
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "All code locations passed validation" in done.stdout + done.stderr


def test_the_cli_gives_a_dagster_home_without_settings_the_projects(tmp_path, sqlite_url):
    """Dagster reads only $DAGSTER_HOME/dagster.yaml and warns at every start without one."""
    repo = Path(__file__).resolve().parent.parent
    home = tmp_path / "empty-home"
    sample = str(repo / "migration_assets" / "sample_data")
    done = run("migrate", "--source", sample, "--backup", str(tmp_path / "bk"), home=home, url=sqlite_url, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert (home / "dagster.yaml").read_text() == (repo / "dagster.yaml").read_text()
    assert "No dagster instance configuration file" not in done.stderr
