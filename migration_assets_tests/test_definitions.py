import dagster as dg

from migration_assets.definitions import defs

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
