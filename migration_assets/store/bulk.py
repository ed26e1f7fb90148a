"""Bulk inserts on the driver's ``executemany``, with SQLAlchemy's own type conversions.

Core ``insert()`` with a list of dicts spends more time building per-row parameters than
the database spends storing them; this applies each column's bind processor once per
value and hands the driver plain tuples, with the SQL compiled once per column list.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect


@lru_cache(maxsize=64)
def _compiled(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[str, ...] | None, list[Any]]:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    keys = order or columns
    processors = [table.c[key].type._cached_bind_processor(dialect) for key in keys]
    return str(compiled), order, processors


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one ``executemany``."""
    if not rows:
        return
    columns = tuple(rows[0])
    sql, order, processors = _compiled(table, columns, conn.dialect)
    keys = order or columns
    params: list[Any] = []
    for row in rows:
        values = [row[key] if proc is None else proc(row[key]) for key, proc in zip(keys, processors, strict=True)]
        params.append(tuple(values) if order else dict(zip(keys, values, strict=True)))
    conn.exec_driver_sql(sql, params)
