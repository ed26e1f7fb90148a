"""Import that validates and never half-writes: the manifest verified whole, every line checked
against the migration's rules and rejected alone with its reasons, batches all or nothing, the
import a run of its own that ends in a final state and can be rolled back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import select, text

from migration_assets.config import MigrationConfig
from migration_assets.rollback import rollback
from migration_assets.service import import_export
from migration_assets.store.database import get_engine
from migration_assets.store.tables import RUNS
from migration_assets.transfer import CONTENT_FILE, MANIFEST_FILE, ExportError, export_content
from migration_assets_tests.test_backup import write_source
from migration_assets_tests.test_pipeline import materialize
from migration_assets_tests.test_rollback import cli, dump


def exported(tmp_path: Path, url: str, instance) -> tuple[Path, list[dict]]:
    materialize(write_source(tmp_path / "src"), tmp_path / "bk", url, instance)
    export_content(get_engine(url), tmp_path / "export", url)
    lines = [json.loads(line) for line in (tmp_path / "export" / CONTENT_FILE).read_text().splitlines()]
    return tmp_path / "export", lines


def rewrite(export: Path, lines: list, *, manifest_rows: int | None = None) -> None:
    """The export's content file rewritten with these lines (objects, or raw text), and its manifest to match."""
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    (export / CONTENT_FILE).write_text(body)
    digest = hashlib.sha256(body.encode()).hexdigest()
    rows = manifest_rows if manifest_rows is not None else len(lines)
    (export / MANIFEST_FILE).write_text(json.dumps({"files": [{"name": CONTENT_FILE, "sha256": digest, "rows": rows}]}))


def config(tmp_path: Path) -> MigrationConfig:
    return MigrationConfig(source_directory=str(tmp_path / "export"), backup_directory=str(tmp_path / "import-bk"))


def runs(url: str) -> list[tuple[str, str]]:
    with get_engine(url).connect() as conn:
        return conn.execute(select(RUNS.c.id, RUNS.c.status).where(RUNS.c.id.like("import-%"))).tuples().all()


@pytest.mark.parametrize(
    "manifest",
    [
        {"files": []},
        {},
        [],
        {"files": [{"name": "../content_items.jsonl", "sha256": "0" * 64, "rows": 1}]},
        {"files": [{"name": CONTENT_FILE, "rows": 6}]},
    ],
)
def test_a_manifest_that_does_not_vouch_for_the_whole_export_is_refused_and_writes_nothing(tmp_path, sqlite_url, instance, manifest):
    export, _ = exported(tmp_path, sqlite_url, instance)
    (export / MANIFEST_FILE).write_text(json.dumps(manifest))
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(ExportError):
        import_export(config(tmp_path), fresh, export)
    assert all(not rows for table, rows in dump(fresh).items() if table in ("content_items", "legacy_mappings"))
    assert [status for _, status in runs(fresh)] == ["failed"]  # the import is a run, left in a final state


def test_a_row_count_that_does_not_match_the_manifest_is_refused(tmp_path, sqlite_url, instance):
    export, lines = exported(tmp_path, sqlite_url, instance)
    rewrite(export, lines, manifest_rows=len(lines) + 1)
    with pytest.raises(ExportError, match="holds 6 lines, the manifest says 7"):
        import_export(config(tmp_path), f"sqlite:///{tmp_path / 'fresh.db'}", export)


def test_every_bad_line_is_rejected_alone_with_its_reasons_and_the_rest_imported(tmp_path, sqlite_url, instance):
    export, lines = exported(tmp_path, sqlite_url, instance)
    good = lines[0]
    bad = [
        "{broken",
        "42",
        {**good, "legacy_id": "x" * 5000},
        {**good, "legacy_id": "huge-title", "title": "t" * 2_000_001},
        {**good, "legacy_id": "script", "url": "javascript:alert(1)"},
        {**good, "legacy_id": "tags-as-text", "tags": "a,b"},
        {**good, "legacy_id": "title-as-list", "title": ["a"]},
        {**good, "legacy_id": "no-format", "source_format": "exe"},
        dict(good),  # the first line again: a duplicate legacy id
    ]
    warned = {**good, "legacy_id": "yesterday", "created_at": "yesterday"}
    rewrite(export, [*lines, *bad, warned])
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    outcome = import_export(config(tmp_path), fresh, export)
    assert outcome.counts == {"inserted": len(lines) + 1, "updated": 0, "unchanged": 0, "rejected": len(bad), "warned": 1}
    report = json.loads(outcome.report_path.read_text())
    reasons = {r["index"]: (r["stage"], r["rules"], r["reason"]) for r in report["rejected_records"]}
    first_bad = len(lines) + 1
    assert reasons[first_bad][0] == "parse" and "not JSON" in reasons[first_bad][2]
    assert "int, not a content item" in reasons[first_bad + 1][2]
    assert reasons[first_bad + 2][1] == ["legacy_id.max_length"]
    assert reasons[first_bad + 3][1] == ["title.max_length"]
    assert reasons[first_bad + 4][1] == ["url.policy"]
    assert reasons[first_bad + 5][1] == ["tags.type"]
    assert "title is list, not text" in reasons[first_bad + 6][2]
    assert "source_format 'exe'" in reasons[first_bad + 7][2]
    assert reasons[first_bad + 8][1] == ["legacy_id.unique"] and "first on line 1" in reasons[first_bad + 8][2]
    assert report["status"] == "completed" and report["by_rule"]["created_at.unparseable"] == {"rejected": 0, "warned": 1}
    with get_engine(fresh).connect() as conn:
        assert conn.execute(text("select created_at from content_items where legacy_id = 'yesterday'")).scalar_one() is None
        assert conn.execute(text("select count(*) from content_items")).scalar_one() == len(lines) + 1


def test_an_edited_line_that_keeps_its_old_record_hash_is_updated(tmp_path, sqlite_url, instance):
    export, lines = exported(tmp_path, sqlite_url, instance)
    edited = {**lines[1], "title": "Edited by hand"}  # record_hash and content_hash as exported
    rewrite(export, [lines[0], edited, *lines[2:]])
    outcome = import_export(config(tmp_path), sqlite_url, export)
    assert (outcome.counts["updated"], outcome.counts["unchanged"]) == (1, len(lines) - 1)
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(text("select title from content_items where legacy_id = :l"), {"l": edited["legacy_id"]}).scalar_one() == "Edited by hand"


def test_an_import_is_a_run_that_rolls_back_exactly(tmp_path, sqlite_url, instance):
    export, lines = exported(tmp_path, sqlite_url, instance)
    rewrite(export, [{**line, "content": line["content"] + " (imported)"} for line in lines] + [{**lines[0], "legacy_id": "new-one"}])
    before = dump(sqlite_url)
    outcome = import_export(config(tmp_path), sqlite_url, export)
    assert outcome.counts["updated"] == len(lines) and outcome.counts["inserted"] == 1 and outcome.not_reversible is None
    plan = rollback(get_engine(sqlite_url), None, sqlite_url, run_id=outcome.run_id, confirm=True)
    assert plan.runs == [outcome.run_id]
    after = dump(sqlite_url)
    for table in ("content_items", "legacy_mappings", "knowledge_items", "embeddings"):
        assert after[table] == before[table], table


def test_the_import_command_says_one_line_and_a_failed_import_blocks_no_rollback(tmp_path, sqlite_url, instance):
    export, lines = exported(tmp_path, sqlite_url, instance)
    with get_engine(sqlite_url).connect() as conn:
        first = conn.execute(select(RUNS.c.id)).scalar_one()
    (export / MANIFEST_FILE).write_text(json.dumps({"files": []}))
    refused = cli("import", "--input", str(export), "--backup", str(tmp_path / "import-bk"), url=sqlite_url)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: import refused:") and refused.stderr.strip().count("\n") == 0
    assert [status for _, status in runs(sqlite_url)] == ["failed"]
    done = cli("rollback", first, "--confirm", url=sqlite_url)
    assert done.returncode == 0, done.stderr


def test_a_bad_line_in_a_later_batch_costs_only_itself(tmp_path, sqlite_url, instance):
    from migration_assets.store.runs import start_run
    from migration_assets.transfer import import_content

    export, lines = exported(tmp_path, sqlite_url, instance)
    rewrite(export, [*lines[:4], "{not json", *lines[4:]])  # the fifth line, in the third batch of two
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    start_run(get_engine(fresh), "import-small-batches", source_directory=str(export), config={})
    result = import_content(get_engine(fresh), export, "import-small-batches", batch_size=2)
    assert (result.inserted, result.rejected) == (len(lines), 1)
    with get_engine(fresh).connect() as conn:
        assert conn.execute(text("select record_index, stage from rejected_records")).all() == [(5, "parse")]
