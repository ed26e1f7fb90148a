"""PostgreSQL as a first-class backend: same rows as SQLite, its own refusals isolated per
record, concurrent runs, and the Dagster instance on PostgreSQL."""

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, text

from migration_assets.store.database import get_engine, normalise_url
from migration_assets.store.models import ContentItem
from migration_assets_tests.test_pipeline import content_snapshot, materialize

REPO = Path(__file__).resolve().parent.parent
COMPARED = ("legacy_id", "source_path", "source_format", "title", "content", "url", "content_type", "category", "tags", "metadata")


def rows_of(url: str) -> list[tuple]:
    columns = [ContentItem.__table__.c[name] for name in COMPARED] + [ContentItem.created_at, ContentItem.content_hash]
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(*columns).order_by(ContentItem.legacy_id)).all()
    return [(*row[:-2], row[-2].isoformat()[:19] if row[-2] else None, row[-1]) for row in rows]


def test_plain_postgresql_urls_use_psycopg_3():
    assert normalise_url("postgresql://u@h/db").startswith("postgresql+psycopg://")
    assert normalise_url("postgres://u@h/db").startswith("postgresql+psycopg://")


def test_the_same_corpus_gives_the_same_rows_in_sqlite_and_postgresql(small_corpus, tmp_path, sqlite_url, postgres_url, instance):
    assert materialize(small_corpus.root, tmp_path / "b1", sqlite_url, instance).success
    assert materialize(small_corpus.root, tmp_path / "b2", postgres_url, instance).success
    in_sqlite, in_postgres = rows_of(sqlite_url), rows_of(postgres_url)
    assert len(in_sqlite) == small_corpus.expected_records()
    assert in_sqlite == in_postgres


def test_postgresql_schema_has_native_types_and_constraints(postgres_url):
    with get_engine(postgres_url).connect() as conn:
        types = dict(
            conn.execute(
                text(
                    "select table_name || '.' || column_name, data_type from information_schema.columns "
                    "where table_schema = current_schema() and column_name in ('metadata', 'created_at', 'vector')"
                )
            ).all()
        )
        uniques = set(conn.execute(text("select conname from pg_constraint where contype in ('u', 'p')")).scalars())
    assert types["content_items.metadata"] == "jsonb"
    assert types["content_items.created_at"] == "timestamp with time zone"
    assert types["embeddings.vector"] == "ARRAY"
    assert {"uq_content_items_legacy_id", "pk_legacy_mappings", "uq_embeddings_knowledge_item_id"} <= uniques


def test_text_postgresql_cannot_store_is_cleaned_on_both_backends(tmp_path, target_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text('{"id": "n1", "title": "nul\\u0000here", "content": "x", "metadata": {"score": NaN, "k\\u0000": "v"}}')
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    with get_engine(target_url).connect() as conn:
        title, metadata = conn.execute(select(ContentItem.title, ContentItem.metadata_)).one()
    assert title == "nulhere" and metadata == {"id": "n1", "title": "nulhere", "score": None, "k": "v"}


def test_a_record_postgresql_refuses_is_rejected_alone_and_the_batch_goes_on(tmp_path, postgres_url, instance):
    source = tmp_path / "src"
    source.mkdir()
    records = [{"id": "ok-1", "title": "fine"}, {"id": "long", "title": "t", "category": "c" * 300}, {"id": "ok-2", "title": "fine too"}]
    (source / "a.json").write_text(json.dumps(records))
    assert materialize(source, tmp_path / "bk", postgres_url, instance, validate_data=False).success
    with get_engine(postgres_url).connect() as conn:
        assert conn.execute(select(ContentItem.legacy_id).order_by(ContentItem.legacy_id)).scalars().all() == ["ok-1", "ok-2"]
    report = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    (rejected,) = report["rejected_records"]
    assert rejected["legacy_id"] == "long" and rejected["stage"] == "load"
    assert "refused by the database: value too long" in rejected["reason"]


def _cli(source: Path, backup: Path, home: Path, url: str) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": url}
    command = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(backup), "--batch-size", "20"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_of_the_same_source_at_once_leave_the_database_as_one(small_corpus, tmp_path, target_url, instance):
    runs = [_cli(small_corpus.root, tmp_path / f"b{i}", tmp_path / f"h{i}", target_url) for i in range(2)]
    outcomes = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    concurrent = content_snapshot(target_url)
    assert len(concurrent[0]) == small_corpus.expected_records()
    reports = [json.loads((tmp_path / f"b{i}" / "migration_report.json").read_text()) for i in range(2)]
    loaded = [r["totals"]["records"] for r in reports]
    assert sum(r["inserted"] for r in loaded) == small_corpus.expected_records()
    assert all(r["inserted"] + r["unchanged"] == small_corpus.expected_records() for r in loaded)


def test_two_runs_of_different_sources_at_once_both_land(tmp_path, target_url):
    from migration_assets_tests.conftest import make_corpus

    first, second = make_corpus(tmp_path / "c1" / "legacy", 60, seed=21), make_corpus(tmp_path / "c2" / "legacy", 60, seed=22)
    runs = [_cli(c.root, tmp_path / f"b{i}", tmp_path / f"h{i}", target_url) for i, c in enumerate((first, second))]
    outcomes = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outcomes
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(ContentItem.id)).scalars().all().__len__() == first.expected_records() + second.expected_records()


def test_writers_of_different_files_write_side_by_side_and_of_one_file_one_after_the_other(postgres_url):
    """The locks behind concurrent batches and waves: a writer holds only its files, so another
    writer of other files goes on at once; a writer of the same file waits for the first to
    commit; a rollback or import (``serialise_writes``) waits for every writer."""
    from sqlalchemy.exc import OperationalError

    from migration_assets.store.database import serialise_writes, share_writes

    engine = get_engine(postgres_url)

    def refused_at_once(keys: list[str] | None) -> bool:
        with engine.connect() as conn, conn.begin():
            conn.execute(text("set local lock_timeout = '300ms'"))
            try:
                share_writes(conn, "content", keys) if keys is not None else serialise_writes(conn, "content")
            except OperationalError as exc:
                assert getattr(exc.orig, "sqlstate", None) == "55P03"  # lock_timeout: it would have waited
                return True
            return False

    with engine.connect() as first, first.begin():
        share_writes(first, "content", ["/legacy/a.json", "/legacy/b.md"])
        assert not refused_at_once(["/legacy/c.json", "/legacy/d.csv"])  # other files: side by side
        assert refused_at_once(["/legacy/d.csv", "/legacy/b.md"])  # one file shared: after the first
        assert refused_at_once(None)  # a rollback: after every writer
    assert not refused_at_once(["/legacy/b.md"]) and not refused_at_once(None)  # the first committed


def test_batches_of_one_run_written_at_once_count_every_record_in_its_progress(tmp_path, postgres_url, instance):
    """Two write connections (the default on PostgreSQL) and many small batches: the run's
    progress adds every batch's counts, and the target holds what one writer would have written."""
    from migration_assets.store.runs import latest_items  # noqa: F401 - the module under test writes progress
    from migration_assets_tests.conftest import make_corpus

    corpus = make_corpus(tmp_path / "c" / "legacy", 120, seed=31)
    result = materialize(corpus.root, tmp_path / "bk", postgres_url, instance, batch_size=3, write_connections=4)
    assert result.success
    with get_engine(postgres_url).connect() as conn:
        stats = conn.execute(text("select stats from migration_runs order by started_at desc limit 1")).scalar_one()
        inserted = conn.execute(select(ContentItem.id)).scalars().all()
    progress = stats["progress"]
    assert progress["files_done"] == progress["files"] == len(corpus.files)
    assert progress["batches_done"] == progress["batches"]
    assert progress["inserted"] == len(inserted) == corpus.expected_records()


def test_batches_written_at_once_still_keep_the_first_of_a_run_s_duplicate_ids(tmp_path, postgres_url, instance):
    """A legacy id in several files of one run: the first file's record is kept, whatever the
    order the concurrent writers commit in (a batch that shares ids with one in flight waits)."""
    source = tmp_path / "src"
    source.mkdir()
    for n in range(16):
        (source / f"f{n:02}.json").write_text(json.dumps([{"id": "7", "title": f"copy {n}"}, {"id": f"own-{n}", "title": f"own {n}"}]))
    assert materialize(source, tmp_path / "bk", postgres_url, instance, batch_size=1, write_connections=4).success
    with get_engine(postgres_url).connect() as conn:
        assert conn.execute(select(ContentItem.title).where(ContentItem.legacy_id == "7")).scalar_one() == "copy 0"
        assert conn.execute(select(ContentItem.id)).scalars().all().__len__() == 17
    report = json.loads((tmp_path / "bk" / "migration_report.json").read_text())
    assert sorted(r["path"] for r in report["rejected_records"]) == [f"f{n:02}.json" for n in range(1, 16)]
    assert {r["reason"] for r in report["rejected_records"]} == {"duplicate legacy_id '7': first seen in f00.json"}
