"""Backups that make every run reversible: a journal of the prior state of every row a run
inserts, updates or deletes, sealed with sha256 checksums recorded in ``migration_backups``
(the authority a rollback checks; ``rollback.py`` undoes a run from them).

The journal is written before each batch commits, so whatever a run committed is in it; a
write that fails leaves no torn line behind. Lines can be encrypted (Fernet, key in
``MIGRATION_BACKUP_KEY``), each line on its own, so one key reads the runs that had it while
plain runs stay plain. Plain Python, no Dagster.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, Engine, Table, event, select, update

from migration_assets.outputs import replace_file
from migration_assets.sources.discovery import file_sha256 as sha256_file
from migration_assets.store.bulk import bulk_insert
from migration_assets.store.database import normalise_url, redact_url
from migration_assets.store.models import (
    utcnow,
)
from migration_assets.store.tables import BACKUPS, CONTENT, EMBEDDINGS, JOURNAL_TXS, KNOWLEDGE, MAPPINGS, RUNS

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


def encode_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$migration_assets:datetime": value.isoformat()}
    if isinstance(value, np.ndarray):
        return {"$migration_assets:float32": base64.b64encode(np.asarray(value, dtype="<f4").tobytes()).decode()}
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$migration_assets:datetime" in value:
            return dt.datetime.fromisoformat(value["$migration_assets:datetime"])
        if "$migration_assets:float32" in value:
            return np.frombuffer(base64.b64decode(value["$migration_assets:float32"]), dtype="<f4").copy()
    return value


def run_backup_dir(backup_directory: Path, run_id: str) -> Path:
    return backup_directory / BACKUPS_FOLDER / run_id


class Journal:
    """Append-only journal of one stage of one run: what each write changed, before it commits.

    Several threads may write through one journal, each in transactions of its own (the
    concurrent batch writers of PostgreSQL): a transaction's id and entries belong to its thread,
    and a commit appends its lines whole."""

    def __init__(self, directory: Path, stage: str, run_id: str, fernet: Fernet | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{stage}.journal"
        self.stage = stage
        self.run_id = run_id
        self.fernet = fernet
        self.counts: Counter[str] = Counter()
        self._local = threading.local()  # this thread's transaction: ``tx`` and its ``pending`` entries
        self._lock = threading.Lock()  # the file and the counts

    @property
    def tx(self) -> str:
        return getattr(self._local, "tx", "")

    def open_transaction(self, conn: Connection) -> None:
        """Call first in every write transaction: the entries that follow count only if this
        transaction commits (its id is written in the same transaction). They reach the disk
        together, synced, just before the transaction commits: if they cannot be written, it
        does not commit."""
        self._local.tx = f"{self.stage}:{uuid.uuid4().hex}"
        self._local.pending = []
        conn.execute(JOURNAL_TXS.insert().values(run_id=self.run_id, tx=self.tx))
        event.listen(conn, "commit", self._write_pending, once=True)

    def _append(self, entry: dict[str, Any]) -> None:
        if not self.tx:
            raise RuntimeError("journal entry outside a journaled transaction (call open_transaction first)")
        entry["tx"] = self.tx
        line = json.dumps(entry, ensure_ascii=False, default=encode_value).encode()
        if self.fernet:
            line = self.fernet.encrypt(line)
        self._local.pending.append(line + b"\n")

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.counts[key] += n

    def _write_pending(self, _conn: Connection) -> None:
        pending, self._local.pending = getattr(self._local, "pending", []), []
        if not pending:
            return
        with self._lock, open(self.path, "ab") as fh:
            whole = fh.tell()
            try:
                fh.write(b"".join(pending))
                fh.flush()
                os.fsync(fh.fileno())
            except OSError:
                # a full disk, say: the transaction does not commit, and its lines must not stay
                # torn in the journal either (they would spoil every line after them)
                with contextlib.suppress(OSError):
                    fh.truncate(whole)
                raise

    def inserted(self, table: str, keys: Sequence[Any]) -> None:
        if keys:
            self._append({"op": "insert", "table": table, "keys": list(keys)})
            self._count(f"{table}.insert", len(keys))

    def before_change(self, conn: Connection, table: str, op: str, keys: Sequence[Any]) -> None:
        """Keep the current rows of ``keys`` before they are updated or deleted."""
        if not keys:
            return
        target = TABLES[table]
        key = target.c[KEYS[table]]
        rows = []
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            rows += [{k: encode_value(v) for k, v in row.items()} for row in conn.execute(select(target).where(key.in_(chunk))).mappings()]
        if rows:
            self._append({"op": op, "table": table, "rows": rows})
            self._count(f"{table}.{op}", len(rows))

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


class KeyNeeded(BackupError):
    """An encrypted journal line, and no key to read it."""


class WrongKey(BackupError):
    """An encrypted journal line the key does not open (another key, or a damaged line)."""


_FERNET = b"gAAAAA"  # how every Fernet token begins (version 0x80, base64)


def decode_line(line: bytes, fernet: Fernet | None, path: Path) -> dict[str, Any]:
    """One journal line: plain JSON as it is, an encrypted one decrypted with ``fernet``;
    ``ValueError`` for a line that is neither."""
    if not line.startswith(b"{"):
        if not line.startswith(_FERNET):
            raise ValueError("not a journal entry")
        if fernet is None:
            raise KeyNeeded(f"{path} is encrypted: set {KEY_ENV} to the key it was written with")
        try:
            line = fernet.decrypt(line)
        except InvalidToken:
            raise WrongKey(f"{path} cannot be decrypted with the key in {KEY_ENV}") from None
    entry = json.loads(line)
    if not isinstance(entry, dict):
        raise ValueError("not a journal entry")
    return entry


def read_journal(path: Path, fernet: Fernet | None) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\n")
            if line:
                try:
                    yield decode_line(line, fernet, path)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise BackupError(f"{path} has a line that is not a journal entry ({exc}); it was changed since it was sealed") from None


@dataclass
class JournalScan:
    """What sealing finds in a journal: changes per ``table.op`` of committed transactions, whether
    any line is encrypted, and how many bytes hold whole lines (the rest is a torn tail)."""

    changes: Counter[str] = field(default_factory=Counter)
    encrypted: bool = False
    whole_bytes: int = 0


def scan_journal(path: Path, fernet: Fernet | None, committed: set[str]) -> JournalScan:
    """Read a journal for sealing, line by line. A last line that does not decode, or has no
    newline, is a torn tail (the write of a transaction that never committed, cut by a full disk
    or a kill): it is left out of ``whole_bytes``. A bad line with more after it is damage:
    ``BackupError``."""
    scan = JournalScan()
    position = 0
    torn: tuple[int, Exception] | None = None  # where the first line that does not decode starts, and why
    with open(path, "rb") as fh:
        for raw in fh:
            line = raw.rstrip(b"\n")
            if torn is not None:
                if line.strip():
                    if isinstance(torn[1], WrongKey):
                        raise torn[1]
                    raise BackupError(f"{path} is damaged at byte {torn[0]}, with more entries after it; the run cannot be undone from it")
                continue
            if line:
                try:
                    entry = decode_line(line, fernet, path)
                except (ValueError, UnicodeDecodeError, WrongKey) as exc:
                    torn = (position, exc)
                    continue
                if not raw.endswith(b"\n"):
                    break  # a whole entry cut before its newline: its transaction never committed
                scan.encrypted |= not line.startswith(b"{")
                if entry.get("tx") in committed:
                    scan.changes[f"{entry.get('table')}.{entry.get('op')}"] += len(entry.get("keys") or entry.get("rows") or [])
            position += len(raw)
            scan.whole_bytes = position
    return scan


STAGE_ORDER = ("content", "knowledge", "embeddings")


def committed_transactions(conn: Connection, run_id: str) -> set[str]:
    return set(conn.execute(select(JOURNAL_TXS.c.tx).where(JOURNAL_TXS.c.run_id == run_id)).scalars())


def canonical_url(url: str) -> str:
    """A database URL as backups record it and rollbacks compare it: driver normalised, a SQLite
    path made absolute, the password hidden."""
    return redact_url(normalise_url(url, create_dirs=False))


def seal_backup(engine: Engine, run_id: str, backup_directory: Path, database_url: str) -> dict[str, Any]:
    """Checksum the run's journals (a torn tail trimmed first), record them in
    ``migration_backups`` — the authority a rollback checks — and write ``rollback_info.json``
    (in the run's backup folder and as the backup directory's latest) when the disk allows.
    ``BackupError`` when a journal is damaged or cannot be read without the key."""
    directory = run_backup_dir(backup_directory, run_id)
    fernet = fernet_from_env()
    with engine.connect() as conn:
        committed = committed_transactions(conn, run_id)
    files: list[dict[str, Any]] = []
    totals: Counter[str] = Counter()
    for stage in STAGE_ORDER:
        path = directory / f"{stage}.journal"
        if not path.exists():
            continue
        scan = scan_journal(path, fernet, committed)
        if scan.whole_bytes < path.stat().st_size:
            with open(path, "r+b") as fh:
                fh.truncate(scan.whole_bytes)
        totals.update(scan.changes)
        files.append(
            {
                "stage": stage,
                "path": str(path),
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "rows": sum(scan.changes.values()),
                "encrypted": scan.encrypted,
                "changes": dict(scan.changes),
            }
        )
    info = {
        "run_id": run_id,
        "database_url": canonical_url(database_url),
        "created_at": utcnow().isoformat(),
        "encrypted": any(f["encrypted"] for f in files),
        "files": files,
        "counts": dict(totals),
    }
    with engine.begin() as conn:
        conn.execute(BACKUPS.delete().where(BACKUPS.c.run_id == run_id))
        rows = [
            {"run_id": run_id, "path": f["path"], "kind": f"journal:{f['stage']}", "sha256": f["sha256"], "size": f["size"],
             "rows": f["rows"], "encrypted": f["encrypted"], "created_at": utcnow()}
            for f in files
        ]  # fmt: skip
        if rows:
            bulk_insert(conn, BACKUPS, rows)
            note_backup(conn, run_id, "sealed", f"{len(files)} journal files, {sum(totals.values())} rows")
        else:
            note_backup(conn, run_id, "nothing_written", "no journal: the run wrote nothing to undo")
    if not files:
        return info  # no rollback file for a run with nothing to undo: the latest stays the latest real one
    text = json.dumps(info, indent=2)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / ROLLBACK_FILE).write_text(text)
        replace_file(text.encode(), backup_directory / ROLLBACK_FILE)  # the latest: concurrent waves each write it whole
    except OSError as exc:  # the database holds what a rollback needs: `rollback RUN_ID` works without the file
        info["rollback_file_error"] = f"rollback_info.json not written ({exc.strerror or exc}); roll back with the run id"
    return info


def note_backup(conn: Connection, run_id: str, state: str, detail: str) -> None:
    """Record in the run's stats whether it can be undone: ``sealed``, or ``not_reversible`` and why."""
    current = conn.execute(select(RUNS.c.stats).where(RUNS.c.id == run_id)).scalar_one_or_none()
    if current is not None:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(stats={**current, "backup": {"state": state, "detail": detail}}))


def seal_or_mark(engine: Engine, run_id: str, backup_directory: Path, database_url: str) -> str | None:
    """``seal_backup``, or when it cannot be sealed, the run marked plainly not reversible;
    returns why not, or None when sealed."""
    try:
        seal_backup(engine, run_id, backup_directory, database_url)
        return None
    except (BackupError, OSError) as exc:
        reason = str(exc) if isinstance(exc, BackupError) else f"the journal cannot be read ({exc.strerror or exc})"
        with engine.begin() as conn:
            note_backup(conn, run_id, "not_reversible", reason)
        return reason
