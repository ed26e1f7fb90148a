"""Which runs a run built on (``run_dependencies``), and so which runs a rollback must undo first.

A run depends on another when it counted that run's rows as its own unchanged records, or
updated, deleted or built on them (chunks of its content, vectors of its chunks). Recorded in
the transaction that does it, whether or not the run keeps backups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Insert, String, Table, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from migration_assets.store.tables import CONTENT, DEPENDENCIES, EMBEDDINGS, KNOWLEDGE, MAPPINGS, RUNS


def depend_on_runs(conn: Connection, run_id: str, others: Iterable[str | None]) -> None:
    """``run_id`` depends on each of ``others`` (itself and None are left out)."""
    wanted = {other for other in others if other and other != run_id}
    if not wanted:
        return
    recorded = select(DEPENDENCIES.c.depends_on).where(DEPENDENCIES.c.run_id == run_id, DEPENDENCIES.c.depends_on.in_(sorted(wanted)))
    known = set(conn.execute(recorded).scalars())
    rows = [{"run_id": run_id, "depends_on": other} for other in sorted(wanted - known)]
    if rows:
        conn.execute(_insert_new(conn), rows)


def depend_on_rows(conn: Connection, run_id: str, table: Table, *where: Any) -> None:
    """``run_id`` built on the rows of ``table`` matching ``where``: it depends on the runs that
    wrote them (one statement, in the database)."""
    owners = select(table.c.run_id.label("owner")).where(*where, table.c.run_id != run_id).distinct().subquery()
    recorded = select(DEPENDENCIES.c.depends_on).where(DEPENDENCIES.c.run_id == run_id)
    new = select(literal(run_id, String).label("run_id"), owners.c.owner).where(owners.c.owner.not_in(recorded))
    conn.execute(_insert_new(conn).from_select(["run_id", "depends_on"], new))


def _insert_new(conn: Connection) -> Insert:
    """An insert into ``run_dependencies`` that leaves a row already there alone: batches of one
    run written at once may both find that it depends on the same run."""
    statement = postgresql.insert(DEPENDENCIES) if conn.dialect.name == "postgresql" else sqlite.insert(DEPENDENCIES)
    return statement.on_conflict_do_nothing()


def depend_on_chunks_of(conn: Connection, run_id: str, item_ids: Any) -> None:
    """``run_id`` deletes or replaces the knowledge of these content items (ids, or a select of
    them): it depends on the runs that wrote their chunks and vectors."""
    depend_on_rows(conn, run_id, KNOWLEDGE, KNOWLEDGE.c.content_item_id.in_(item_ids))
    chunk_ids = select(KNOWLEDGE.c.id).where(KNOWLEDGE.c.content_item_id.in_(item_ids))
    depend_on_rows(conn, run_id, EMBEDDINGS, EMBEDDINGS.c.knowledge_item_id.in_(chunk_ids))


def depend_on_content(conn: Connection, run_id: str, *where: Any) -> None:
    """``run_id`` deletes the content items matching ``where``, and with them their mappings,
    chunks and vectors: it depends on the runs that wrote any of them."""
    item_ids = select(CONTENT.c.id).where(*where)
    depend_on_rows(conn, run_id, CONTENT, *where)
    depend_on_rows(conn, run_id, MAPPINGS, MAPPINGS.c.content_item_id.in_(item_ids))
    depend_on_chunks_of(conn, run_id, item_ids)


def dependents(conn: Connection, run_id: str) -> set[str]:
    """Every run that stands (not rolled back) and depends on ``run_id``, directly or through others."""
    found: set[str] = set()
    frontier = {run_id}
    while frontier:
        rows = conn.execute(
            select(DEPENDENCIES.c.run_id)
            .join(RUNS, RUNS.c.id == DEPENDENCIES.c.run_id)
            .where(DEPENDENCIES.c.depends_on.in_(sorted(frontier)), RUNS.c.status != "rolled_back", RUNS.c.dry_run.is_(False))
        ).scalars()
        frontier = set(rows) - found - {run_id}
        found |= frontier
    return found


def undo_order(conn: Connection, runs: set[str]) -> list[str]:
    """``runs`` in the order they can be undone: a run before every run it depends on (among
    ``runs``); runs that depend on each other (two concurrent runs, say), newest first."""
    among = sorted(runs)
    edges = conn.execute(
        select(DEPENDENCIES.c.run_id, DEPENDENCIES.c.depends_on).where(DEPENDENCIES.c.run_id.in_(among), DEPENDENCIES.c.depends_on.in_(among))
    ).all()
    started = {run: str(at) for run, at in conn.execute(select(RUNS.c.id, RUNS.c.started_at).where(RUNS.c.id.in_(sorted(runs)))).tuples()}
    remaining = set(runs)
    order: list[str] = []
    while remaining:
        depended_on = {dep for run, dep in edges if run in remaining and dep in remaining and run != dep}
        free = sorted(remaining - depended_on, key=lambda r: started.get(r, ""), reverse=True)
        if not free:  # a cycle: the newest of it first
            free = sorted(remaining, key=lambda r: started.get(r, ""), reverse=True)[:1]
        order += free
        remaining -= set(free)
    return order
