"""Reliability: hostile input file by file, the source directory as a boundary, kills at
random points, transient and hard database faults, and a fuzz test of the parsers."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

from migration_assets.records import RecordRejection, normalise_record
from migration_assets.sources.csv_files import parse_csv
from migration_assets.sources.errors import FileRejected
from migration_assets.sources.json_files import parse_json, parse_jsonl
from migration_assets.sources.markdown import parse_markdown
from migration_assets.sources.text import parse_text
from migration_assets.store.database import create_target_engine, get_engine, normalise_url, readonly_engine
from migration_assets.store.models import ContentItem, KnowledgeItem
from migration_assets.store.retry import retry_transient
from migration_assets_tests.conftest import make_corpus
from migration_assets_tests.hostile_corpus import MAX_FILE_SIZE, write_hostile_corpus
from migration_assets_tests.test_pipeline import materialize


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_every_hostile_file_ends_as_expected_and_nothing_escapes_the_backup_directory(tmp_path, target_url, instance):
    source, backup = tmp_path / "src", tmp_path / "bk"
    source.mkdir()
    expect = write_hostile_corpus(source, tmp_path / "outside")
    untouched = tree(tmp_path)
    result = materialize(source, backup, target_url, instance, max_file_size=MAX_FILE_SIZE)
    assert result.success
    report = json.loads((backup / "migration_report.json").read_text())
    seen = {f["path"]: f for f in report["files"]}
    assert set(seen) == set(expect)
    for path, outcome in expect.items():
        got = seen[path]
        assert got["status"] == outcome.status, (path, got)
        assert got["records"]["inserted"] == outcome.loaded, (path, got)
        assert got["records"]["rejected"] == outcome.rejected_records, (path, got)
        if outcome.reason:
            assert outcome.reason in (got["reason"] or ""), (path, got["reason"])
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    written = ("bk", "target.db", "dagster_home")  # the backup directory, the SQLite target, the Dagster instance
    new_files = {p for p in tree(tmp_path) - untouched if not p.startswith(written)}
    assert new_files == set()
    with get_engine(target_url).connect() as conn:
        titles = dict(conn.execute(select(ContentItem.legacy_id, ContentItem.title)).all())
        long_item = conn.execute(select(ContentItem.id, ContentItem.content).where(ContentItem.source_path == "md/long.md")).one()
        chunks = (
            conn.execute(select(KnowledgeItem.text).where(KnowledgeItem.content_item_id == long_item.id).order_by(KnowledgeItem.chunk_index))
            .scalars()
            .all()
        )
    assert titles["dup1"] == "second" and titles["012345"] == "no" and titles["nul1"] == "ab"
    assert titles["123456789012345678901234567890"] == "big" and "../../../etc/passwd" in titles
    assert len(chunks) > 10 and "".join(chunks).strip() == long_item.content.strip()


def _cli(source: Path, backup: Path, home: Path, url: str) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "DATABASE_URL": url}
    command = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(backup), "--batch-size", "8"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def content_state(url: str) -> dict[str, object]:
    columns = [ContentItem.__table__.c[c] for c in ("legacy_id", "source_path", "title", "content", "url", "tags", "metadata", "record_hash")]
    with get_engine(url).connect() as conn:
        items = conn.execute(select(*columns).order_by(ContentItem.legacy_id)).all()
        chunks = conn.execute(
            text("select c.legacy_id, k.chunk_index, k.text from knowledge_items k join content_items c on c.id = k.content_item_id order by 1, 2")
        ).all()
        vectors = conn.execute(text("select count(*) from embeddings")).scalar_one()
        mappings = conn.execute(text("select count(*) from legacy_mappings m join content_items c on c.id = m.content_item_id")).scalar_one()
    return {"items": items, "chunks": chunks, "vectors": vectors, "mappings": mappings}


def _runs_started(url: str) -> int:
    """How many runs the target has a row for (0 before its schema exists)."""
    engine = readonly_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("select count(*) from migration_runs")).scalar_one())
    except DBAPIError:
        return 0
    finally:
        engine.dispose()


def _started(run: subprocess.Popen, url: str, before: int) -> float:
    """Wait until ``run`` has its row in the target (it is past its start-up); the time then."""
    while _runs_started(url) <= before and run.poll() is None:
        time.sleep(0.05)
    return time.perf_counter()


def test_killed_at_random_points_and_rerun_the_database_ends_as_after_one_clean_run(tmp_path, target_url, sqlite_url):
    corpus = make_corpus(tmp_path / "c" / "legacy", 160, seed=31)
    reference_url = sqlite_url if target_url != sqlite_url else f"sqlite:///{tmp_path / 'reference.db'}"
    clean = _cli(corpus.root, tmp_path / "ref-bk", tmp_path / "ref-home", reference_url)
    writing = _started(clean, reference_url, 0)
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    duration = time.perf_counter() - writing  # from its run row to its end: where a kill lands mid-run
    rng = random.Random(7)
    kill_points = sorted(rng.uniform(0.0, 0.9) * duration for _ in range(5))
    exits = []
    for attempt, delay in enumerate(kill_points):
        run = _cli(corpus.root, tmp_path / "bk", tmp_path / f"home-{attempt}", target_url)
        _started(run, target_url, attempt)
        time.sleep(delay)
        run.send_signal(signal.SIGKILL)
        exits.append(run.wait(timeout=60))
    final = _cli(corpus.root, tmp_path / "bk", tmp_path / "home-final", target_url)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    assert content_state(target_url) == content_state(reference_url)
    with get_engine(target_url).connect() as conn:
        runs = conn.execute(text("select status, error from migration_runs order by started_at")).all()
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == corpus.expected_records()
    assert runs[-1].status == "completed"
    # a kill that landed mid-run: the next run found its process gone and closed it, failed, saying so;
    # a run that had finished before its kill came (a rerun over content already in is quick) is completed
    assert len(runs) == len(exits) + 1, runs
    for code, run in zip(exits, runs[:-1], strict=True):
        gone = run.status == "failed" and "is gone: killed or crashed" in (run.error or "")
        assert run.status == "completed" if code == 0 else gone or run.status == "completed", (exits, runs)
    assert any(run.status == "failed" for run in runs[:-1]), (exits, runs)


def test_a_dropped_database_connection_is_retried_and_reported(postgres_url):
    engine = get_engine(postgres_url)
    admin = create_engine(normalise_url(postgres_url))
    attempts, retries = [], []

    def work() -> int:
        with engine.begin() as conn:
            attempts.append(conn.execute(text("select pg_backend_pid()")).scalar_one())
            if len(attempts) == 1:
                with admin.begin() as other:
                    other.execute(text("select pg_terminate_backend(:pid)"), {"pid": attempts[0]})
            return conn.execute(text("select count(*) from content_items")).scalar_one()

    assert retry_transient(work, base_delay=0.05, on_retry=lambda n, exc: retries.append(n)) == 0
    admin.dispose()
    assert retries == [1] and len(attempts) == 2 and attempts[0] != attempts[1]


HOG = """
import sys
from sqlalchemy import text
from migration_assets.store.database import create_target_engine
engine = create_target_engine(sys.argv[1])
for n in range(int(sys.argv[2])):
    with engine.begin() as conn:  # back to back: the gap between two is a few microseconds
        conn.execute(text("insert into t (writer) values (:w)"), [{"w": "hog"}] * 3000)
"""


def test_a_sqlite_writer_is_not_starved_by_another_process_writing_back_to_back(tmp_path):
    """SQLite's busy handler polls: without a queue, a run whose writes come batch after batch
    holds the write lock until it ends, and the other run fails with "database is locked"."""
    url = f"sqlite:///{tmp_path / 'target.db'}"
    engine = create_target_engine(url)
    with engine.begin() as conn:
        conn.execute(text("create table t (id integer primary key, writer text)"))
    hog = subprocess.Popen([sys.executable, "-c", HOG, url, "400"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and hog.poll() is None:
        with engine.connect() as conn:
            if conn.execute(text("select count(*) from t")).scalar_one():
                break
        time.sleep(0.01)
    for _ in range(20):
        with engine.begin() as conn:
            conn.execute(text("insert into t (writer) values ('other')"))
    assert hog.wait(timeout=300) == 0, hog.stderr.read()
    with engine.connect() as conn:
        last_other, last_hog, hog_rows = conn.execute(
            text("select max(case when writer = 'other' then id end), max(case when writer = 'hog' then id end), sum(writer = 'hog') from t")
        ).one()
    assert hog_rows == 400 * 3000
    assert last_other < last_hog, "the other writer had to wait for the hog to finish"


def test_a_reader_of_a_sqlite_target_sees_only_whole_commits_while_another_process_writes(tmp_path):
    """New targets use SQLite's rollback journal (WAL wrote every page twice): a reader waits out
    a commit in the busy handler, never fails, and never sees half a transaction."""
    url = f"sqlite:///{tmp_path / 'target.db'}"
    engine = create_target_engine(url)
    with engine.begin() as conn:
        conn.execute(text("create table t (id integer primary key, writer text)"))
        assert conn.exec_driver_sql("pragma journal_mode").scalar_one() == "delete"
    hog = subprocess.Popen([sys.executable, "-c", HOG, url, "150"], stderr=subprocess.PIPE, text=True)
    reader = readonly_engine(url)
    seen = []
    while hog.poll() is None:
        with reader.connect() as conn:
            seen.append(conn.execute(text("select count(*) from t")).scalar_one())
    assert hog.wait(timeout=300) == 0, hog.stderr.read()
    assert len(seen) > 10 and any(0 < n < 150 * 3000 for n in seen), "the reads overlapped the writes"
    assert all(n % 3000 == 0 for n in seen), "a read saw part of a transaction"
    assert seen == sorted(seen)
    reader.dispose()


def test_a_sqlite_target_made_in_wal_mode_keeps_it_and_still_takes_runs(tmp_path, instance):
    import sqlite3

    path = tmp_path / "wal.db"
    with sqlite3.connect(path) as raw:
        raw.execute("pragma journal_mode=wal")
    url = f"sqlite:///{path}"
    corpus = make_corpus(tmp_path / "c" / "legacy", 30, seed=5)
    assert materialize(corpus.root, tmp_path / "bk", url, instance).success
    with get_engine(url).connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar_one() == "wal"
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == corpus.expected_records()


def test_a_read_only_target_stops_the_run_with_a_clear_message(tmp_path, instance):
    database = tmp_path / "ro.db"
    get_engine(f"sqlite:///{database}")  # schema in place, then opened read-only
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello")
    env = {**os.environ, "DAGSTER_HOME": str(instance.root_directory), "DATABASE_URL": f"sqlite:///file:{database}?mode=ro&uri=true"}
    done = subprocess.run(
        [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(tmp_path / "bk")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "readonly database" in done.stderr


def test_a_file_changed_while_it_is_migrated_is_not_half_migrated(tmp_path):
    from migration_assets.sources.discovery import scan_source
    from migration_assets.sources.parse import parse_file

    (tmp_path / "a.json").write_text(json.dumps({"id": 1, "title": "before"}))
    (inventoried,) = scan_source(tmp_path, max_file_size=10_000)
    (tmp_path / "a.json").write_text(json.dumps({"id": 1, "title": "after, and longer"}))
    outcome = parse_file(tmp_path, inventoried)
    assert outcome.records == [] and "changed while being migrated" in outcome.error


PARSERS = [parse_json, parse_jsonl, parse_markdown, parse_text, parse_csv]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
    | st.sampled_from(["{", "[", "---\n", "+++\n", "id,title\n", "\ufeff{}"]).flatmap(lambda p: st.text(max_size=200).map(lambda t: p + t))
)
def test_no_parser_crashes_on_any_text(text):
    for parse in PARSERS:
        try:
            records, rejections = parse(text, "fuzz/input")
        except FileRejected:
            continue
        assert all(isinstance(r, RecordRejection) for r in rejections)
        for record in records:
            assert record.legacy_id and "\x00" not in (record.title or "") + (record.content or "")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.dates() | st.datetimes(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(
    raw=st.dictionaries(
        st.sampled_from(["id", "title", "content", "url", "tags", "date", "metadata", "category", "type", "x"]) | st.text(max_size=6),
        json_values,
        max_size=8,
    )
)
def test_the_record_normaliser_never_crashes_and_its_records_are_json_safe(raw):
    result = normalise_record(raw, source_path="fuzz.json", source_format="json", record_index=0)
    if isinstance(result, RecordRejection):
        assert result.reason
    else:
        json.dumps(result.metadata, allow_nan=False)
        json.dumps(result.tags)


def test_an_embedding_model_that_cannot_load_stops_cleanly_and_the_run_resumes_later(tmp_path, target_url, instance):
    import dagster as dg

    from migration_assets.defs.catalog import ASSETS
    from migration_assets.defs.partitions import WAVES
    from migration_assets.defs.resources import EmbeddingModel, MigrationResource, TargetDatabase
    from migration_assets.runner import root_cause
    from migration_assets.waves import plan_waves

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.json").write_text(json.dumps([{"id": f"e{i}", "title": "T", "content": "enough text to embed " * 40} for i in range(3)]))
    migration = MigrationResource(source_directory=str(source), backup_directory=str(tmp_path / "bk"))
    (wave,) = plan_waves(get_engine(target_url), migration.settings())
    instance.add_dynamic_partitions(WAVES, [wave.partition_key])
    assets = ASSETS
    broken = {"migration": migration, "target": TargetDatabase(url=target_url), "embedding_model": EmbeddingModel(provider="no-such-model")}
    failed = dg.materialize(assets, resources=broken, instance=instance, partition_key=wave.partition_key, raise_on_error=False)
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert failure.step_key == "embeddings" and "unknown embedding provider 'no-such-model'" in root_cause(failure.step_failure_data.error)
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == 3  # committed batches stay, consistent
        assert conn.execute(text("select count(*) from embeddings")).scalar_one() == 0
    fixed = {**broken, "embedding_model": EmbeddingModel()}
    resumed = dg.materialize(assets, resources=fixed, instance=instance, partition_key=wave.partition_key)
    assert resumed.success
    with get_engine(target_url).connect() as conn:
        vectors = conn.execute(text("select count(*) from embeddings")).scalar_one()
        chunks = conn.execute(text("select count(*) from knowledge_items")).scalar_one()
    assert vectors == chunks > 0


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KB file system, to fill up."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_completes(tmp_path, sqlite_url, tiny_disk, instance):
    source = tmp_path / "src"
    source.mkdir()
    for i in range(20):
        (source / f"f{i}.json").write_text(json.dumps({"id": f"d{i}", "title": "T", "content": "z" * 20_000}))
    env = {**os.environ, "DAGSTER_HOME": str(instance.root_directory), "DATABASE_URL": sqlite_url}
    command = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--batch-size", "5", "--backup"]
    with pytest.raises(OSError, match="No space left"), open(tiny_disk / "filler", "wb", buffering=0) as filler:
        while True:  # the disk is full before the run starts
            filler.write(b"x" * 1024)
    full = subprocess.run([*command, str(tiny_disk / "bk")], env=env, capture_output=True, text=True, timeout=120)
    assert full.returncode == 1 and "No space left on device" in full.stderr
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == 0  # nothing half-written
    roomy = subprocess.run([*command, str(tmp_path / "bk")], env=env, capture_output=True, text=True, timeout=120)
    assert roomy.returncode == 0, roomy.stderr
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContentItem)).scalar_one() == 20


def test_a_title_taken_from_a_heading_is_cleaned_like_the_text():
    """Found by the fuzz test above: the heading of ``# \\x00`` became the title with its NUL."""
    (record,), _ = parse_markdown("# Café\x00 menu\n\nSoup of the day.", "menus/today.md")
    assert record.title == "Café menu" and "\x00" not in record.content
