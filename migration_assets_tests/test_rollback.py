"""Rollback that holds under tampering, faults and concurrent runs: the database is the authority
for a run's backup, dependencies (not start times) decide what a rollback needs, and every
refusal is one line that leaves the target exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text, update

from migration_assets.backup import KEY_ENV, BackupError
from migration_assets.rollback import rollback
from migration_assets.store.database import get_engine
from migration_assets.store.tables import BACKUPS, RUNS
from migration_assets_tests.test_backup import change_source, write_source
from migration_assets_tests.test_pipeline import materialize
from migration_assets_tests.test_reliability import _cli

TABLES = [
    "content_items", "legacy_mappings", "knowledge_items", "embeddings", "migration_runs", "migration_items",
    "rejected_records", "migration_backups", "migration_waves", "run_dependencies",
]  # fmt: skip


def dump(url: str) -> dict[str, list[tuple]]:
    """Every table a rollback could touch, whole."""
    with get_engine(url).connect() as conn:
        return {table: conn.execute(text(f"select * from {table} order by 1, 2")).all() for table in TABLES}


def cli(*args: str, url: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "migration_assets.cli", *args], env=environment, capture_output=True, text=True, timeout=300, cwd=cwd
    )


def two_runs(tmp_path: Path, url: str, instance) -> tuple[str, str]:
    """A first run, and a second, incremental one that changes some of its records."""
    source = write_source(tmp_path / "src")
    first = materialize(source, tmp_path / "bk", url, instance)
    change_source(source)
    second = materialize(source, tmp_path / "bk", url, instance, incremental=True)
    assert first.success and second.success
    return first.run_id, second.run_id


def journal(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "bk" / "backups" / run_id / "content.journal"


def test_a_rollback_file_that_names_no_files_is_refused_and_the_run_stays(tmp_path, sqlite_url, instance):
    _, second = two_runs(tmp_path, sqlite_url, instance)
    info_path = tmp_path / "bk" / "rollback_info.json"
    info = json.loads(info_path.read_text())
    info["files"] = []
    info_path.write_text(json.dumps(info))
    before = dump(sqlite_url)
    with pytest.raises(BackupError, match="does not agree with the database's record"):
        rollback(get_engine(sqlite_url), info_path, sqlite_url, confirm=True)
    assert dump(sqlite_url) == before
    # by its id, the database's own record of the backup is used
    plan = rollback(get_engine(sqlite_url), None, sqlite_url, run_id=second, confirm=True)
    assert plan.applied and plan.runs == [second]


def test_a_journal_rewritten_with_its_checksum_is_refused_even_when_the_database_record_is_forged_too(tmp_path, sqlite_url, instance):
    first, second = two_runs(tmp_path, sqlite_url, instance)
    path = journal(tmp_path, second)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    with get_engine(sqlite_url).connect() as conn:
        untouched = conn.execute(text("select * from content_items where run_id = :r order by id limit 1"), {"r": first}).mappings().one()
    forged = {**dict(untouched), "title": "FORGED", "created_at": None, "migrated_at": None, "updated_at": None}
    with open(path, "a") as fh:  # one more update, under a transaction id the run did commit
        fh.write(json.dumps({"op": "update", "table": "content_items", "rows": [forged], "tx": entries[0]["tx"]}) + "\n")
    digest, size = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    info_path = tmp_path / "bk" / "rollback_info.json"
    info = json.loads(info_path.read_text())
    for f in info["files"]:
        if f["path"] == str(path):
            f["sha256"], f["size"] = digest, size
    info_path.write_text(json.dumps(info))
    before = dump(sqlite_url)
    with pytest.raises(BackupError, match="does not agree with the database's record"):
        rollback(get_engine(sqlite_url), info_path, sqlite_url, confirm=True)
    with pytest.raises(BackupError, match="fails its checksum"):
        rollback(get_engine(sqlite_url), None, sqlite_url, run_id=second, confirm=True)
    assert dump(sqlite_url) == before
    # and a database record forged to match: the entry is for a row the run never wrote
    with get_engine(sqlite_url).begin() as conn:
        conn.execute(update(BACKUPS).where(BACKUPS.c.path == str(path)).values(sha256=digest, size=size, rows=BACKUPS.c.rows + 1))
    before = dump(sqlite_url)
    with pytest.raises(BackupError, match=f"last written by run {first}, not by run {second}"):
        rollback(get_engine(sqlite_url), None, sqlite_url, run_id=second, confirm=True)
    assert dump(sqlite_url) == before


@pytest.mark.parametrize("content", ["{}", "[]", '{"run_id": 7, "database_url": "x", "files": []}', "not json at all", '{"run_id": "r"}'])
def test_a_malformed_rollback_file_is_one_line_and_exit_1(tmp_path, sqlite_url, content):
    get_engine(sqlite_url)  # an existing target
    bad = tmp_path / "rollback_info.json"
    bad.write_text(content)
    done = cli("rollback", "--rollback-file", str(bad), "--confirm", url=sqlite_url)
    assert done.returncode == 1 and done.stderr.startswith("Error: rollback refused:") and done.stderr.strip().count("\n") == 0, done.stderr
    assert "Traceback" not in done.stderr


def test_encrypted_and_plain_runs_mix_each_read_as_it_was_written(tmp_path, sqlite_url, instance, monkeypatch):
    source = write_source(tmp_path / "src")
    plain = materialize(source, tmp_path / "bk", sqlite_url, instance)
    empty = {table: [] for table in ("content_items", "legacy_mappings", "knowledge_items", "embeddings")}
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    change_source(source)
    encrypted = materialize(source, tmp_path / "bk", sqlite_url, instance, incremental=True)
    assert b"Rewritten content" not in journal(tmp_path, encrypted.run_id).read_bytes()
    with get_engine(sqlite_url).connect() as conn:
        flags = dict(conn.execute(select(BACKUPS.c.run_id, BACKUPS.c.encrypted).where(BACKUPS.c.kind == "journal:content")).tuples().all())
    assert flags == {plain.run_id: False, encrypted.run_id: True}
    key = os.environ[KEY_ENV]
    monkeypatch.delenv(KEY_ENV)  # without the key: the plain run's plan reads, the encrypted one asks for the key
    with pytest.raises(BackupError, match=f"encrypted: set {KEY_ENV}"):
        rollback(get_engine(sqlite_url), None, sqlite_url, run_id=plain.run_id, confirm=True, cascade=True)
    monkeypatch.setenv(KEY_ENV, key)  # with it: both, the plain one read as it is
    plan = rollback(get_engine(sqlite_url), None, sqlite_url, run_id=plain.run_id, confirm=True, cascade=True)
    assert plan.runs == [encrypted.run_id, plain.run_id]
    with get_engine(sqlite_url).connect() as conn:
        assert {t: conn.execute(text(f"select * from {t}")).all() for t in empty} == empty


def test_dependencies_not_start_times_decide_what_a_rollback_needs(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    x = materialize(source, tmp_path / "bk", sqlite_url, instance)
    y = materialize(source, tmp_path / "bk", sqlite_url, instance)  # counts every record of x as its own unchanged
    engine = get_engine(sqlite_url)
    with engine.begin() as conn:  # as if y had started first, x overtaking it (two concurrent runs)
        started = conn.execute(select(RUNS.c.started_at).where(RUNS.c.id == x.run_id)).scalar_one()
        conn.execute(update(RUNS).where(RUNS.c.id == y.run_id).values(started_at=started.replace(year=started.year - 1)))
    other = tmp_path / "other"
    other.mkdir()
    (other / "z.json").write_text(json.dumps({"id": "z1", "title": "Unrelated", "content": "another source altogether"}))
    z = materialize(other, tmp_path / "bk", sqlite_url, instance)  # later, but built on nothing of x's
    before = dump(sqlite_url)
    with pytest.raises(BackupError, match=f"runs built on run {x.run_id}: {y.run_id};"):
        rollback(engine, None, sqlite_url, run_id=x.run_id, confirm=True)
    assert dump(sqlite_url) == before
    plan = rollback(engine, None, sqlite_url, run_id=x.run_id, confirm=True, cascade=True)
    assert plan.runs == [y.run_id, x.run_id]
    with engine.connect() as conn:
        assert conn.execute(text("select legacy_id from content_items")).scalars().all() == ["z1"]
        assert conn.execute(select(RUNS.c.status).where(RUNS.c.id == z.run_id)).scalar_one() == "completed"


def test_a_relative_sqlite_url_is_recorded_absolute_and_a_rollback_elsewhere_creates_nothing(tmp_path, instance):
    source = write_source(tmp_path / "src")
    work = tmp_path / "work"
    work.mkdir()
    home = {"DAGSTER_HOME": str(instance.root_directory)}
    done = cli("migrate", "--source", str(source), "--backup", "bk", url="sqlite:///target.db", cwd=work, env=home)
    assert done.returncode == 0, done.stderr
    info_path = work / "bk" / "rollback_info.json"
    info = json.loads(info_path.read_text())
    assert info["database_url"] == f"sqlite:///{work / 'target.db'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = cli("rollback", "--rollback-file", str(info_path), "--confirm", url="sqlite:///target.db", cwd=elsewhere, env=home)
    assert refused.returncode == 1 and "does not exist" in refused.stderr and refused.stderr.strip().count("\n") == 0
    assert list(elsewhere.iterdir()) == []
    by_file = cli("rollback", "--rollback-file", str(info_path), "--confirm", url=f"sqlite:///{work / 'target.db'}", cwd=elsewhere, env=home)
    assert by_file.returncode == 0 and f"Rolled back run {info['run_id']}" in by_file.stdout, by_file.stderr


def test_rollback_by_run_id_needs_no_file_and_a_run_that_is_gone_is_refused(tmp_path, sqlite_url, instance):
    first, second = two_runs(tmp_path, sqlite_url, instance)
    (tmp_path / "bk" / "rollback_info.json").unlink()
    shown = cli("rollback", second, url=sqlite_url)
    assert shown.returncode == 0 and f"Would roll back run {second}" in shown.stdout
    assert cli("rollback", url=sqlite_url).returncode == 2
    unknown = cli("rollback", "no-such-run", "--confirm", url=sqlite_url)
    assert unknown.returncode == 2 and "not in this target's migration_runs" in unknown.stderr
    done = cli("rollback", first, "--confirm", "--cascade", url=sqlite_url)
    assert done.returncode == 0 and f"Rolled back run {second}" in done.stdout and f"Rolled back run {first}" in done.stdout


def _rows_written_by_a_new_run(url: str, known: set[str]) -> tuple[str, int] | None:
    try:
        with get_engine(url).connect() as conn:
            rows = conn.execute(text("select run_id, count(*) from content_items group by run_id")).all()
    except Exception:  # noqa: BLE001 - the schema may not be there yet
        return None
    return next(((run, n) for run, n in rows if run not in known), None)


def test_a_killed_migrate_is_closed_and_sealed_by_the_next_command_and_blocks_no_earlier_run(tmp_path, target_url, instance):
    import signal
    import time

    from migration_assets_tests.conftest import make_corpus

    first = materialize(write_source(tmp_path / "src"), tmp_path / "bk", target_url, instance)
    after_first = dump(target_url)
    corpus = make_corpus(tmp_path / "c" / "legacy", 300, seed=5)
    killed = _cli(corpus.root, tmp_path / "bk-killed", tmp_path / "home-killed", target_url)
    deadline = time.monotonic() + 120
    while (written := _rows_written_by_a_new_run(target_url, {first.run_id})) is None and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert written is not None, "the run ended before it wrote"
    run_id = written[0]
    journal_path = tmp_path / "bk-killed" / "backups" / run_id / "content.journal"
    with open(journal_path, "ab") as fh:  # and its last write torn, as a kill or a full disk leaves it
        fh.write(b'{"op": "insert", "table": "content_items", "keys": [99999')
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one() == "running"

    # the earlier run rolls back alone: the killed one built on nothing of it
    done = cli("rollback", first.run_id, "--confirm", url=target_url)
    assert done.returncode == 0, done.stderr
    with get_engine(target_url).connect() as conn:
        status, error, stats = conn.execute(select(RUNS.c.status, RUNS.c.error, RUNS.c.stats).where(RUNS.c.id == run_id)).one()
    assert status == "failed" and "is gone: killed or crashed" in error and stats["backup"]["state"] == "sealed"
    assert b"99999" not in journal_path.read_bytes()  # the torn tail trimmed, the rest sealed
    # and the killed run is undone exactly: only its committed rows, all of them
    undone = cli("rollback", run_id, "--confirm", url=target_url)
    assert undone.returncode == 0, undone.stderr
    state = dump(target_url)
    for table in ("content_items", "legacy_mappings", "knowledge_items", "embeddings"):
        assert state[table] == [], table
    assert after_first["content_items"] and state["migration_runs"] != after_first["migration_runs"]


def test_runs_that_wrote_nothing_never_block_a_rollback(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    first = materialize(source, tmp_path / "bk", sqlite_url, instance)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "backups").write_text("a file where the backups folder must go")  # the run cannot journal: it fails before writing
    change_source(source)
    home = {"DAGSTER_HOME": str(instance.root_directory)}
    failed = cli("migrate", "--source", str(source), "--backup", str(blocked), "--incremental", url=sqlite_url, env=home)
    assert failed.returncode == 1
    with get_engine(sqlite_url).connect() as conn:
        statuses = conn.execute(select(RUNS.c.status).order_by(RUNS.c.started_at)).scalars().all()
    assert statuses == ["completed", "failed"]
    done = cli("rollback", first.run_id, "--confirm", url=sqlite_url)
    assert done.returncode == 0 and f"Rolled back run {first.run_id}" in done.stdout, done.stderr


def test_a_disk_that_fills_mid_run_leaves_a_sealed_journal_and_the_run_undoable(tmp_path, sqlite_url, instance):
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        source = tmp_path / "src"
        source.mkdir()
        for i in range(300):
            (source / f"f{i:03}.json").write_text(json.dumps({"id": f"d{i}", "title": f"T{i}", "content": "words " * 150}))
        with open(mount / "filler", "wb", buffering=0) as filler:  # room for a few pages of journal, not for all of it
            filler.write(b"x" * (64 * 1024 - 3 * 4096))
        home = {"DAGSTER_HOME": str(instance.root_directory)}
        full = cli("migrate", "--source", str(source), "--backup", str(mount / "bk"), "--batch-size", "5", url=sqlite_url, env=home)
        assert full.returncode == 1 and "No space left on device" in full.stderr
        with get_engine(sqlite_url).connect() as conn:
            run_id, status, stats = conn.execute(select(RUNS.c.id, RUNS.c.status, RUNS.c.stats)).one()
            written = conn.execute(text("select count(*) from content_items")).scalar_one()
        assert status == "failed" and 0 < written < 300 and stats["backup"]["state"] == "sealed"
        for journal_file in (mount / "bk" / "backups" / run_id).glob("*.journal"):
            assert journal_file.read_bytes().endswith(b"\n")  # no torn line
        undone = cli("rollback", run_id, "--confirm", url=sqlite_url)
        assert undone.returncode == 0, undone.stderr
        assert all(not rows for table, rows in dump(sqlite_url).items() if table in ("content_items", "legacy_mappings", "knowledge_items"))
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_failures_are_one_line_before_any_work_and_a_failed_run_prints_no_stack_trace(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    home = {"DAGSTER_HOME": str(instance.root_directory)}
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    unwritable = cli("migrate", "--source", str(source), "--backup", str(a_file / "bk"), url=sqlite_url, env=home)
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("Error: the backup directory:") and unwritable.stderr.count("\n") == 1
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()  # refused before anything was opened or read
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "backups").write_text("a file where the backups folder must go")
    failed = cli("migrate", "--source", str(source), "--backup", str(blocked), url=sqlite_url, env=home)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and "Not a directory" in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr and "dagster - ERROR" not in failed.stderr
    export = cli("export", "--output", str(a_file / "export"), url=sqlite_url)
    assert export.returncode == 1 and export.stderr.count("\n") == 1 and "cannot be written" in export.stderr
    for url in ("postgresql://nobody@127.0.0.1:1/nowhere", "nosuchdb://x"):
        for args in (["export", "--output", str(tmp_path / "exp")], ["rollback", "some-run"], ["import", "--input", str(tmp_path)]):
            done = cli(*args, "--backup", str(tmp_path / "ib"), url=url) if args[0] == "import" else cli(*args, url=url)
            assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, (args, url, done.stderr)


def test_a_read_only_target_refuses_a_rollback_in_one_line_and_is_left_as_it_was(tmp_path, sqlite_url, instance):
    _, second = two_runs(tmp_path, sqlite_url, instance)
    before = dump(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    done = cli("rollback", second, "--confirm", url=read_only)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "readonly" in done.stderr, done.stderr
    assert dump(sqlite_url) == before


@pytest.mark.parametrize("encrypted", [False, True])
def test_sealing_trims_a_torn_tail_and_refuses_a_damaged_middle(tmp_path, sqlite_url, monkeypatch, encrypted):
    from migration_assets.backup import Journal, run_backup_dir, seal_backup
    from migration_assets.store.runs import finish_run, start_run

    key = Fernet.generate_key().decode()
    if encrypted:
        monkeypatch.setenv(KEY_ENV, key)
    engine = get_engine(sqlite_url)
    start_run(engine, "r", source_directory="x", config={})
    journal = Journal(run_backup_dir(tmp_path / "bk", "r"), "content", "r", Fernet(key.encode()) if encrypted else None)
    for _ in range(2):
        with engine.begin() as conn:
            journal.open_transaction(conn)
            journal.inserted("content_items", [1, 2])
    finish_run(engine, "r", "failed")
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole + whole.splitlines(keepends=True)[0][:37])  # a write cut short
    info = seal_backup(engine, "r", tmp_path / "bk", sqlite_url)
    assert journal.path.read_bytes() == whole and info["counts"] == {"content_items.insert": 4} and info["encrypted"] is encrypted
    lines = whole.splitlines(keepends=True)
    journal.path.write_bytes(lines[0][:20] + b"\n" + lines[1])  # damage with a whole entry after it
    with pytest.raises(BackupError, match="damaged|cannot be decrypted"):
        seal_backup(engine, "r", tmp_path / "bk", sqlite_url)


def test_cascade_finds_the_later_runs_backups_through_the_database_wherever_they_are(tmp_path, sqlite_url, instance):
    source = write_source(tmp_path / "src")
    first = materialize(source, tmp_path / "bk-one", sqlite_url, instance)
    change_source(source)
    second = materialize(source, tmp_path / "bk-two", sqlite_url, instance, incremental=True)
    plan = rollback(get_engine(sqlite_url), tmp_path / "bk-one" / "rollback_info.json", sqlite_url, confirm=True, cascade=True)
    assert plan.runs == [second.run_id, first.run_id]
    assert all(not rows for table, rows in dump(sqlite_url).items() if table in ("content_items", "legacy_mappings", "embeddings"))
