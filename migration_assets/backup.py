"""Backups that make every run reversible: a journal of the prior state of every row a run
inserts, updates or deletes, sealed with sha256 checksums, and the exact rollback it allows.

The journal is written before each batch commits, so whatever a run committed is in it.
Lines can be encrypted (Fernet, key in ``MIGRATION_BACKUP_KEY``). Plain Python, no Dagster.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, Engine, Table, event, select, update

from migration_assets.sources.discovery import file_sha256 as sha256_file
from migration_assets.store.bulk import bulk_insert
from migration_assets.store.database import redact_url
from migration_assets.store.models import (
    utcnow,
)
from migration_assets.store.tables import BACKUPS, CONTENT, EMBEDDINGS, JOURNAL_TXS, KNOWLEDGE, MAPPINGS, RUNS, WAVES

KEY_ENV = "MIGRATION_BACKUP_KEY"
BACKUPS_FOLDER = "backups"
ROLLBACK_FILE = "rollback_info.json"
TABLES: dict[str, Table] = {t.name: t for t in (CONTENT, MAPPINGS, KNOWLEDGE, EMBEDDINGS)}
KEYS = {"content_items": "id", "legacy_mappings": "legacy_id", "knowledge_items": "id", "embeddings": "id"}


class BackupError(RuntimeError):
    """A backup cannot be trusted or used (checksum mismatch, missing key, wrong database)."""


def fernet_from_env() -> Fernet | None:
    key = os.environ.get(KEY_ENV)
    if not key:
        return None
    try:
        return Fernet(key.encode())
    except ValueError as exc:
        raise BackupError(f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes): {exc}") from None


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$migration_assets:datetime": value.isoformat()}
    if isinstance(value, np.ndarray):
        return {"$migration_assets:float32": base64.b64encode(np.asarray(value, dtype="<f4").tobytes()).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$migration_assets:datetime" in value:
            return dt.datetime.fromisoformat(value["$migration_assets:datetime"])
        if "$migration_assets:float32" in value:
            return np.frombuffer(base64.b64decode(value["$migration_assets:float32"]), dtype="<f4").copy()
    return value


def run_backup_dir(backup_directory: Path, run_id: str) -> Path:
    return backup_directory / BACKUPS_FOLDER / run_id


class Journal:
    """Append-only journal of one stage of one run: what each write changed, before it commits."""

    def __init__(self, directory: Path, stage: str, run_id: str, fernet: Fernet | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{stage}.journal"
        self.stage = stage
        self.run_id = run_id
        self.fernet = fernet
        self.counts: Counter[str] = Counter()
        self.tx = ""
        self._pending: list[bytes] = []  # this transaction's entries, written when it commits

    def open_transaction(self, conn: Connection) -> None:
        """Call first in every write transaction: the entries that follow count only if this
        transaction commits (its id is written in the same transaction). They reach the disk
        together, synced, just before the transaction commits: if they cannot be written, it
        does not commit."""
        self.tx = f"{self.stage}:{uuid.uuid4().hex}"
        self._pending = []
        conn.execute(JOURNAL_TXS.insert().values(run_id=self.run_id, tx=self.tx))
        event.listen(conn, "commit", self._write_pending, once=True)

    def _append(self, entry: dict[str, Any]) -> None:
        if not self.tx:
            raise RuntimeError("journal entry outside a journaled transaction (call open_transaction first)")
        entry["tx"] = self.tx
        line = json.dumps(entry, ensure_ascii=False, default=_encode).encode()
        if self.fernet:
            line = self.fernet.encrypt(line)
        self._pending.append(line + b"\n")

    def _write_pending(self, _conn: Connection) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        with open(self.path, "ab") as fh:
            fh.write(b"".join(pending))
            fh.flush()
            os.fsync(fh.fileno())

    def inserted(self, table: str, keys: Sequence[Any]) -> None:
        if keys:
            self._append({"op": "insert", "table": table, "keys": list(keys)})
            self.counts[f"{table}.insert"] += len(keys)

    def before_change(self, conn: Connection, table: str, op: str, keys: Sequence[Any]) -> None:
        """Keep the current rows of ``keys`` before they are updated or deleted."""
        if not keys:
            return
        target = TABLES[table]
        key = target.c[KEYS[table]]
        rows = []
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            rows += [{k: _encode(v) for k, v in row.items()} for row in conn.execute(select(target).where(key.in_(chunk))).mappings()]
        if rows:
            self._append({"op": op, "table": table, "rows": rows})
            self.counts[f"{table}.{op}"] += len(rows)

    def deleting_content(self, conn: Connection, content_ids: Sequence[int]) -> None:
        """Before content items are deleted: their embeddings, chunks and mappings first (children first)."""
        if not content_ids:
            return
        knowledge = TABLES["knowledge_items"]
        chunk_ids = list(conn.execute(select(knowledge.c.id).where(knowledge.c.content_item_id.in_(list(content_ids)))).scalars())
        self.deleting_chunks(conn, chunk_ids)
        mappings = TABLES["legacy_mappings"]
        legacy_ids = list(conn.execute(select(mappings.c.legacy_id).where(mappings.c.content_item_id.in_(list(content_ids)))).scalars())
        self.before_change(conn, "legacy_mappings", "delete", legacy_ids)
        self.before_change(conn, "content_items", "delete", content_ids)

    def deleting_chunks(self, conn: Connection, chunk_ids: Sequence[int]) -> None:
        """Before knowledge items are deleted: their embeddings first."""
        if not chunk_ids:
            return
        embeddings = TABLES["embeddings"]
        vector_ids = list(conn.execute(select(embeddings.c.id).where(embeddings.c.knowledge_item_id.in_(list(chunk_ids)))).scalars())
        self.before_change(conn, "embeddings", "delete", vector_ids)
        self.before_change(conn, "knowledge_items", "delete", chunk_ids)


def read_journal(path: Path, fernet: Fernet | None) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\n")
            if not line:
                continue
            if fernet:
                try:
                    line = fernet.decrypt(line)
                except InvalidToken:
                    raise BackupError(f"{path} cannot be decrypted with the key in {KEY_ENV}") from None
            yield json.loads(line)


STAGE_ORDER = ("content", "knowledge", "embeddings")


def seal_backup(engine: Engine, run_id: str, backup_directory: Path, database_url: str) -> dict[str, Any]:
    """Checksum the run's journals, record them in ``migration_backups`` and write
    ``rollback_info.json`` (in the run's backup folder and as the backup directory's latest)."""
    directory = run_backup_dir(backup_directory, run_id)
    directory.mkdir(parents=True, exist_ok=True)
    fernet = fernet_from_env()
    files: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    for stage in STAGE_ORDER:
        path = directory / f"{stage}.journal"
        if not path.exists():
            continue
        counts: Counter[str] = Counter()
        with engine.connect() as conn:
            committed = set(conn.execute(select(JOURNAL_TXS.c.tx).where(JOURNAL_TXS.c.run_id == run_id)).scalars())
        for entry in read_journal(path, fernet):
            if entry.get("tx") in committed:
                counts[f"{entry['table']}.{entry['op']}"] += len(entry.get("keys") or entry.get("rows") or [])
        totals.update(counts)
        files.append({"stage": stage, "path": str(path), "sha256": sha256_file(path), "size": path.stat().st_size, "changes": dict(counts)})
    info = {
        "run_id": run_id,
        "database_url": redact_url(database_url),
        "created_at": utcnow().isoformat(),
        "encrypted": fernet is not None,
        "files": files,
        "counts": dict(totals),
    }
    text = json.dumps(info, indent=2)
    (directory / ROLLBACK_FILE).write_text(text)
    (backup_directory / ROLLBACK_FILE).write_text(text)
    with engine.begin() as conn:
        conn.execute(BACKUPS.delete().where(BACKUPS.c.run_id == run_id))
        rows = [
            {"run_id": run_id, "path": f["path"], "kind": f"journal:{f['stage']}", "sha256": f["sha256"], "size": f["size"],
             "rows": sum(f["changes"].values()), "encrypted": fernet is not None, "created_at": utcnow()}
            for f in files
        ]  # fmt: skip
        if rows:
            bulk_insert(conn, BACKUPS, rows)
    return info


@dataclass
class RollbackPlan:
    run_id: str
    runs: list[str]  # the runs to undo, newest first (more than one with cascade)
    changes: dict[str, dict[str, int]] = field(default_factory=dict)  # run → table.op → rows
    applied: bool = False


def _load_info(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path} is not a readable rollback file: {exc}") from None


def _verified(info: dict[str, Any]) -> None:
    for f in info["files"]:
        path = Path(f["path"])
        if not path.exists():
            raise BackupError(f"backup file {path} of run {info['run_id']} is missing; refusing to restore")
        actual = sha256_file(path)
        if actual != f["sha256"]:
            raise BackupError(f"backup file {path} of run {info['run_id']} fails its checksum ({actual} != {f['sha256']}); refusing to restore")


def later_runs(engine: Engine, run_id: str) -> list[str]:
    """Runs on this target that started after ``run_id`` and were not rolled back, newest first."""
    with engine.connect() as conn:
        started = conn.execute(select(RUNS.c.started_at).where(RUNS.c.id == run_id)).scalar_one_or_none()
        if started is None:
            raise BackupError(f"run {run_id} is not in this target's migration_runs; is it the right database?")
        rows = conn.execute(
            select(RUNS.c.id)
            .where(RUNS.c.started_at > started, RUNS.c.status != "rolled_back", RUNS.c.dry_run.is_(False))
            .order_by(RUNS.c.started_at.desc())
        ).scalars()
        return list(rows)


def _info_of(run_id: str, sibling_dir: Path) -> dict[str, Any]:
    path = sibling_dir.parent / run_id / ROLLBACK_FILE
    if not path.exists():
        raise BackupError(f"no rollback file for later run {run_id} (looked for {path})")
    return _load_info(path)


def rollback(engine: Engine, rollback_file: Path, database_url: str, *, confirm: bool, cascade: bool = False) -> RollbackPlan:
    """Restore the target to exactly its state before the run of ``rollback_file``.

    Without ``confirm`` nothing changes: the plan says what would be undone. A run that later
    runs built on is refused unless ``cascade``, which undoes those first (newest first).
    """
    info = _load_info(rollback_file)
    if info["database_url"] != redact_url(database_url):
        raise BackupError(f"this backup is of {info['database_url']}, not of {redact_url(database_url)}; refusing to restore")
    run_id = info["run_id"]
    with engine.connect() as conn:
        status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one_or_none()
    if status == "rolled_back":
        raise BackupError(f"run {run_id} is rolled back already")
    later = later_runs(engine, run_id)
    if later and not cascade:
        raise BackupError(f"later runs built on run {run_id}: {', '.join(later)}; roll those back first, or ask for it with --cascade")
    infos = [_info_of(later_id, run_backup_dir_of(rollback_file, run_id)) for later_id in later] + [info]
    for each in infos:
        _verified(each)
    plan = RollbackPlan(run_id, [i["run_id"] for i in infos], {i["run_id"]: i["counts"] for i in infos})
    if not confirm:
        return plan
    fernet = fernet_from_env()
    if any(i["encrypted"] for i in infos) and fernet is None:
        raise BackupError(f"the backup is encrypted: set {KEY_ENV} to its key")
    with engine.begin() as conn:
        for each in infos:
            _undo(conn, each, fernet)
            conn.execute(update(RUNS).where(RUNS.c.id == each["run_id"]).values(status="rolled_back", finished_at=utcnow()))
            conn.execute(update(WAVES).where(WAVES.c.run_id == each["run_id"]).values(status="rolled_back"))
    plan.applied = True
    return plan


def run_backup_dir_of(rollback_file: Path, run_id: str) -> Path:
    """The run's own backup folder, whether ``rollback_file`` is the latest copy or the run's."""
    if rollback_file.parent.name == run_id:
        return rollback_file.parent
    return rollback_file.parent / BACKUPS_FOLDER / run_id


def _undo(conn: Connection, info: dict[str, Any], fernet: Fernet | None) -> None:
    committed = set(conn.execute(select(JOURNAL_TXS.c.tx).where(JOURNAL_TXS.c.run_id == info["run_id"])).scalars())
    # entries of a transaction that rolled back (a crash, a retry) describe nothing that happened
    entries = [entry for f in info["files"] for entry in read_journal(Path(f["path"]), fernet) if entry.get("tx") in committed]
    for entry in reversed(entries):
        table = TABLES[entry["table"]]
        key = table.c[KEYS[entry["table"]]]
        if entry["op"] == "insert":
            keys = entry["keys"]
            for start in range(0, len(keys), 500):
                conn.execute(table.delete().where(key.in_(keys[start : start + 500])))
        elif entry["op"] == "delete":
            bulk_insert(conn, table, [{k: _decode(v) for k, v in row.items()} for row in entry["rows"]])
        elif entry["op"] == "update":
            for row in entry["rows"]:
                values = {k: _decode(v) for k, v in row.items()}
                conn.execute(update(table).where(key == values[KEYS[entry["table"]]]).values(values))
