"""Undoing a run exactly: its sealed journals replayed backwards, in one transaction.

The database is the authority: a run's journals are the files ``migration_backups`` records
for it, each checked for its path, size, sha256 and row count (a rollback file given by hand
must agree with them); a journal entry counts only in a transaction the run committed, and is
replayed only onto rows the run itself wrote as they are now. Runs that built on the run
(``run_dependencies``) are undone first, with ``cascade``, or the rollback is refused.
Plain Python, no Dagster.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, exists, select, update

from migration_assets.backup import (
    KEYS,
    TABLES,
    BackupError,
    canonical_url,
    committed_transactions,
    decode_value,
    fernet_from_env,
    read_journal,
)
from migration_assets.lifecycle import recover_stale_runs
from migration_assets.sources.discovery import file_sha256
from migration_assets.store.bulk import bulk_insert
from migration_assets.store.database import serialise_writes
from migration_assets.store.dependencies import dependents, undo_order
from migration_assets.store.models import utcnow
from migration_assets.store.tables import BACKUPS, ITEMS, RUNS, WAVES

_IN_CHUNK = 500


@dataclass
class RollbackPlan:
    run_id: str
    runs: list[str]  # the runs to undo, in order (more than one with cascade)
    changes: dict[str, dict[str, int]] = field(default_factory=dict)  # run → table.op → rows
    applied: bool = False


def load_rollback_file(path: Path) -> dict[str, Any]:
    """A ``rollback_info.json``, its shape checked: one line saying what is wrong with it otherwise."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackupError(f"{path} is not a readable rollback file: {exc}") from None
    if not isinstance(info, dict):
        raise BackupError(f"{path} is not a rollback file: expected an object, found {type(info).__name__}")
    for key, kind in (("run_id", str), ("database_url", str), ("files", list)):
        if not isinstance(info.get(key), kind):
            raise BackupError(f"{path} is not a rollback file: {key!r} is missing or not {'a list' if kind is list else 'text'}")
    for number, entry in enumerate(info["files"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("path", "sha256")):
            raise BackupError(f"{path} is not a rollback file: files[{number}] lacks its path or sha256")
    return info


def _sealed_files(conn: Connection, run_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(BACKUPS).where(BACKUPS.c.run_id == run_id, BACKUPS.c.kind.like("journal:%")).order_by(BACKUPS.c.id)).mappings()
    return [dict(row) for row in rows]


def _wrote_anything(conn: Connection, run_id: str) -> bool:
    """Whether a run changed the target at all (a run that failed before writing, or found every
    record unchanged, did not): what it wrote and still owns, or what its files record it wrote."""
    if any(conn.execute(select(exists().where(table.c.run_id == run_id))).scalar() for table in TABLES.values()):
        return True
    changed = (ITEMS.c.records_inserted + ITEMS.c.records_updated > 0) | (ITEMS.c.status == "removed")
    return bool(conn.execute(select(exists().where(ITEMS.c.run_id == run_id, changed))).scalar())


@dataclass
class _RunUndo:
    run_id: str
    entries: list[dict[str, Any]]
    changes: Counter[str]


def _journal_of(conn: Connection, run_id: str, given: dict[str, Any] | None) -> _RunUndo:
    """The committed entries of a run's sealed journals, after every check; ``given``: the
    rollback file named on the command line for this run, which must agree with the database."""
    files = _sealed_files(conn, run_id)
    if given is not None:
        named = sorted((f["path"], f["sha256"]) for f in given["files"])
        recorded = sorted((f["path"], f["sha256"]) for f in files)
        if named != recorded:
            raise BackupError(
                f"the rollback file does not agree with the database's record of run {run_id}'s backup "
                f"({len(named)} files named, {len(recorded)} sealed); refusing to restore (roll back by run id to use the database's)"
            )
    if not files:
        stats = conn.execute(select(RUNS.c.stats, RUNS.c.config).where(RUNS.c.id == run_id)).one()
        backup = (stats.stats or {}).get("backup") or {}
        if backup.get("state") != "nothing_written" and _wrote_anything(conn, run_id):
            detail = backup.get("detail")
            if not detail and (stats.config or {}).get("create_backups") is False:
                detail = "backups were off for it (create_backups=false)"
            detail = detail or "no sealed backup"
            raise BackupError(f"run {run_id} cannot be undone: {detail}")
        return _RunUndo(run_id, [], Counter())
    committed = committed_transactions(conn, run_id)
    fernet = fernet_from_env()
    entries: list[dict[str, Any]] = []
    changes: Counter[str] = Counter()
    for sealed in files:
        path = Path(sealed["path"])
        if not path.is_file():
            raise BackupError(f"backup file {path} of run {run_id} is missing; refusing to restore")
        if path.stat().st_size != sealed["size"] or file_sha256(path) != sealed["sha256"]:
            raise BackupError(f"backup file {path} of run {run_id} fails its checksum (it changed since it was sealed); refusing to restore")
        rows = 0
        for entry in read_journal(path, fernet):
            if entry.get("tx") not in committed:
                continue  # a transaction that rolled back (a crash, a retry) describes nothing that happened
            _check_entry(entry, path)
            count = len(entry.get("keys") or entry.get("rows") or [])
            rows += count
            changes[f"{entry['table']}.{entry['op']}"] += count
            entries.append(entry)
        if sealed["rows"] not in (None, -1) and rows != sealed["rows"]:
            raise BackupError(f"backup file {path} of run {run_id} holds {rows} rows, {sealed['rows']} were sealed; refusing to restore")
    return _RunUndo(run_id, entries, changes)


def _check_entry(entry: dict[str, Any], path: Path) -> None:
    table, op = entry.get("table"), entry.get("op")
    payload = entry.get("keys") if op == "insert" else entry.get("rows")
    if table not in TABLES or op not in ("insert", "update", "delete") or not isinstance(payload, list):
        raise BackupError(f"{path} holds an entry that is not a journal entry ({table!r}, {op!r}); refusing to restore")


def rollback(
    engine: Engine,
    rollback_file: Path | None,
    database_url: str,
    *,
    run_id: str | None = None,
    confirm: bool,
    cascade: bool = False,
) -> RollbackPlan:
    """Restore the target to exactly its state before a run, named by id or by its rollback file.

    Without ``confirm`` nothing changes: the plan says what would be undone. A run that other
    runs built on is refused unless ``cascade``, which undoes those first."""
    given = load_rollback_file(rollback_file) if rollback_file is not None else None
    if given is not None:
        if canonical_url(given["database_url"]) != canonical_url(database_url):
            raise BackupError(f"this backup is of {given['database_url']}, not of {canonical_url(database_url)}; refusing to restore")
        if run_id is not None and run_id != given["run_id"]:
            raise BackupError(f"the rollback file is of run {given['run_id']}, not of run {run_id}")
        run_id = given["run_id"]
    if not run_id:
        raise BackupError("name the run to roll back: its id, or its rollback file")
    recover_stale_runs(engine, database_url)  # a killed run is sealed from its journal, and can be undone too
    with engine.connect() as conn:
        run = conn.execute(select(RUNS.c.status, RUNS.c.dry_run).where(RUNS.c.id == run_id)).first()
        if run is None:
            raise BackupError(f"run {run_id} is not in this target's migration_runs; is it the right database?")
        if run.status == "rolled_back":
            raise BackupError(f"run {run_id} is rolled back already")
        if run.status == "running":
            raise BackupError(f"run {run_id} is still running; roll it back once it has ended")
        if run.dry_run:
            raise BackupError(f"run {run_id} was a dry run: it changed nothing")
        built_on = dependents(conn, run_id)
        order = undo_order(conn, built_on | {run_id})
        if built_on and not cascade:
            later = [r for r in order if r != run_id]
            raise BackupError(f"runs built on run {run_id}: {', '.join(later)}; roll those back first, or ask for it with --cascade")
        running = [r for r in order if r != run_id and conn.execute(select(RUNS.c.status).where(RUNS.c.id == r)).scalar() == "running"]
        if running:
            raise BackupError(f"run {running[0]}, built on run {run_id}, is still running; roll back once it has ended")
        undos = [_journal_of(conn, r, given if r == run_id else None) for r in order]
    plan = RollbackPlan(run_id, order, {u.run_id: dict(u.changes) for u in undos})
    if not confirm:
        return plan
    with engine.begin() as conn:
        for scope in ("content", "knowledge", "embeddings"):
            serialise_writes(conn, scope)
        for undo in undos:
            _undo(conn, undo)
            stats = conn.execute(select(RUNS.c.stats).where(RUNS.c.id == undo.run_id)).scalar_one_or_none() or {}
            # the run's own finish time stays; when it was undone is said beside it
            undone = {**stats, "rolled_back_at": utcnow().isoformat()}
            conn.execute(update(RUNS).where(RUNS.c.id == undo.run_id).values(status="rolled_back", stats=undone))
            conn.execute(update(WAVES).where(WAVES.c.run_id == undo.run_id).values(status="rolled_back"))
    plan.applied = True
    return plan


def _undo(conn: Connection, undo: _RunUndo) -> None:
    for entry in reversed(undo.entries):
        table = TABLES[entry["table"]]
        key = table.c[KEYS[entry["table"]]]
        if entry["op"] == "insert":
            keys = entry["keys"]
            _check_owner(conn, undo.run_id, entry["table"], keys, exist=None)
            for start in range(0, len(keys), _IN_CHUNK):
                conn.execute(table.delete().where(key.in_(keys[start : start + _IN_CHUNK])))
        elif entry["op"] == "delete":
            rows = [{k: decode_value(v) for k, v in row.items()} for row in entry["rows"]]
            _check_owner(conn, undo.run_id, entry["table"], [row[KEYS[entry["table"]]] for row in rows], exist=False)
            bulk_insert(conn, table, rows)
        else:
            rows = [{k: decode_value(v) for k, v in row.items()} for row in entry["rows"]]
            _check_owner(conn, undo.run_id, entry["table"], [row[KEYS[entry["table"]]] for row in rows], exist=True)
            for values in rows:
                conn.execute(update(table).where(key == values[KEYS[entry["table"]]]).values(values))


def _check_owner(conn: Connection, run_id: str, table_name: str, keys: list[Any], *, exist: bool | None) -> None:
    """The rows an entry undoes are as the run left them: rows it inserted or updated are still
    its own (``exist`` True: they must be there), rows it deleted are not back (``exist`` False).
    Anything else means the journal does not describe the target as it is: refused."""
    table = TABLES[table_name]
    key = table.c[KEYS[table_name]]
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        found = dict(conn.execute(select(key, table.c.run_id).where(key.in_(chunk))).tuples().all())
        for value in chunk:
            owner = found.get(value)
            if exist is False and value in found:
                raise BackupError(f"{table_name} {value!r}, which run {run_id} deleted, is back (written by run {owner}); refusing to restore")
            if exist is True and value not in found:
                raise BackupError(f"{table_name} {value!r}, which run {run_id} updated, is gone from the target; refusing to restore")
            if exist is not False and value in found and owner != run_id:
                raise BackupError(
                    f"{table_name} {value!r} was last written by run {owner}, not by run {run_id} whose journal would change it; refusing to restore"
                )
