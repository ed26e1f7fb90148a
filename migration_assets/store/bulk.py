"""Bulk inserts: COPY on PostgreSQL, the driver's ``executemany`` elsewhere.

Core ``insert()`` with a list of dicts spends more time building per-row parameters than
the database spends storing them. Here SQLite gets plain tuples (each column's SQLAlchemy
bind processor applied once per value, the SQL compiled once per column list), and
PostgreSQL gets ``COPY ... FROM STDIN`` rows with JSON and vectors rendered as text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import JSON, Connection, Table, func, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from migration_assets.store.types import Vector


@lru_cache(maxsize=64)
def _compiled(table: Table, columns: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[str, ...] | None, list[Any]]:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    keys = order or columns
    processors = [_processor(table.c[key].type, dialect) for key in keys]
    return str(compiled), order, processors


def _processor(column_type: Any, dialect: Dialect) -> Any:
    processor = column_type._cached_bind_processor(dialect)
    if processor is not None and isinstance(column_type, Vector) and dialect.name == "sqlite":
        # a vector already given as its float32 bytes is stored as it is
        return lambda value: value if type(value) is bytes else processor(value)
    return processor


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, allow_nan=False)


def _vector_texts(values: Sequence[Any]) -> list[str | None]:
    """PostgreSQL array literals for a column of vectors, formatted by numpy in one pass (nine
    significant digits: what a float32 needs to come back bit for bit)."""
    present = [i for i, v in enumerate(values) if v is not None]
    texts: list[str | None] = [None] * len(values)
    if present:
        buffer = io.StringIO()
        vectors = [
            np.frombuffer(values[i], dtype="<f4") if isinstance(values[i], bytes) else np.asarray(values[i], dtype=np.float32) for i in present
        ]
        np.savetxt(buffer, np.vstack(vectors), fmt="%.9g", delimiter=",")
        for i, line in zip(present, buffer.getvalue().splitlines(), strict=True):
            texts[i] = "{" + line + "}"
    return texts


def _copy(conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> None:
    names = ", ".join(f'"{table.c[key].name}"' for key in columns)
    values = dict(columns)
    for key in columns:
        if isinstance(table.c[key].type, Vector):
            values[key] = _vector_texts(values[key])
        elif isinstance(table.c[key].type, JSON):
            values[key] = _converted(list(values[key]), _json_text)  # most records' empty tags and metadata once
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    driver_connection = conn.connection.driver_connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in zip(*values.values(), strict=True):
                copy.write_row(row)
    except dbapi.Error as exc:
        # the same exception classes (DataError, IntegrityError, ...) as a statement through SQLAlchemy
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc


_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_FLOAT4_OID = 700


def copy_vectors(conn: Connection, table: Table, ids: Sequence[int], parent_ids: Sequence[int], model: str, vectors: np.ndarray, run_id: str) -> bool:
    """On PostgreSQL with psycopg: insert embedding rows (``id``, ``knowledge_item_id``, ``model``,
    ``dimension``, ``vector``, ``run_id``) by binary ``COPY``, every row built at once by numpy in
    PostgreSQL's binary row format (a ``real[]`` as ``array_send`` writes it). Text arrays cost
    the client a formatting pass and the server a parse of every float. Returns False, having
    done nothing, where this does not apply (another database or driver, an empty model name)."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg" or not model or not run_id:
        return False
    count, dimension = vectors.shape
    model_bytes, run_bytes = model.encode(), run_id.encode()
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_size", ">i4"), ("id", ">i8"),
            ("parent_size", ">i4"), ("parent", ">i8"),
            ("model_size", ">i4"), ("model", f"S{len(model_bytes)}"),
            ("dimension_size", ">i4"), ("dimension", ">i4"),
            ("vector_size", ">i4"), ("ndim", ">i4"), ("has_nulls", ">i4"), ("element_type", ">i4"), ("length", ">i4"), ("lower_bound", ">i4"),
            ("elements", [("size", ">i4"), ("value", ">f4")], (dimension,)),
            ("run_size", ">i4"), ("run", f"S{len(run_bytes)}"),
        ]
    )  # fmt: skip
    data = np.zeros(count, dtype=row)
    data["fields"] = 6
    data["id_size"], data["id"] = 8, np.asarray(ids, dtype=np.int64)
    data["parent_size"], data["parent"] = 8, np.asarray(parent_ids, dtype=np.int64)
    data["model_size"], data["model"] = len(model_bytes), model_bytes
    data["dimension_size"], data["dimension"] = 4, dimension
    data["vector_size"] = 20 + 8 * dimension
    data["ndim"], data["has_nulls"], data["element_type"], data["length"], data["lower_bound"] = 1, 0, _FLOAT4_OID, dimension, 1
    data["elements"]["size"], data["elements"]["value"] = 4, vectors
    data["run_size"], data["run"] = len(run_bytes), run_bytes
    statement = f'COPY "{table.name}" (id, knowledge_item_id, model, dimension, vector, run_id) FROM STDIN WITH (FORMAT BINARY)'
    dbapi = conn.dialect.loaded_dbapi
    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            copy.write(_PGCOPY_HEADER + data.tobytes() + b"\xff\xff")
    except dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dbapi.Error) from exc
    return True


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in one statement: all or nothing."""
    if rows:
        insert_columns(conn, table, {key: [row[key] for row in rows] for key in rows[0]})


def insert_columns(conn: Connection, table: Table, columns: Mapping[str, Sequence[Any]]) -> None:
    """Insert rows given column by column (every list as long) in one statement: all or nothing.
    Rows a writer builds only to insert need not become dicts first."""
    if not columns or not len(next(iter(columns.values()))):
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, table, columns)
        return
    sql, order, processors = _compiled(table, tuple(columns), conn.dialect)
    keys = order or tuple(columns)
    # column by column: a column without a bind processor (text, numbers, bytes: most) costs no
    # Python call per value, and a column's value shared by many rows (the batch's timestamp,
    # say) or an empty list or dict (most records' tags and metadata) is converted once
    values = [_converted(list(columns[key]), proc) for key, proc in zip(keys, processors, strict=True)]
    params: list[Any] = list(zip(*values, strict=True)) if order else [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
    conn.exec_driver_sql(sql, params)


def _converted(column: list[Any], proc: Any) -> list[Any]:
    if proc is None:
        return column
    last: Any = _UNSET
    done: Any = None
    empty: dict[type, Any] = {}
    out = []
    for value in column:
        if value is not last:
            if type(value) in (list, dict) and not value:
                kind = type(value)
                if kind not in empty:
                    empty[kind] = proc(value)
                last, done = value, empty[kind]
            else:
                last, done = value, proc(value)
        out.append(done)
    return out


_UNSET = object()


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` fresh values of ``table``'s integer primary key ``id``, for rows the caller is
    about to insert in this transaction with explicit ids (so it need not read them back).

    PostgreSQL draws them from the column's sequence. SQLite continues after the largest id,
    as it would itself: the transaction holds SQLite's write lock (BEGIN IMMEDIATE), so no
    other writer can take them first.
    """
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        sequence = conn.exec_driver_sql(f"select pg_get_serial_sequence('{table.name}', 'id')").scalar_one()
        drawn = conn.exec_driver_sql(f"select nextval('{sequence}') from generate_series(1, {int(count)})").scalars().all()
        return [int(i) for i in drawn]
    start = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one() + 1
    return list(range(start, start + count))


def assign_ids(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Give rows about to be inserted in this transaction their ids (see ``reserve_ids``),
    so that nothing has to read them back; returns the ids, in order."""
    ids = reserve_ids(conn, table, len(rows))
    for row, row_id in zip(rows, ids, strict=True):
        row["id"] = row_id
    return ids
