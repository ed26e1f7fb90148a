"""Column types that are portable between SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import JSON, REAL, LargeBinary
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

JSONDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Vector(TypeDecorator[np.ndarray]):
    """A float32 vector: ``real[]`` on PostgreSQL, little-endian float32 bytes elsewhere;
    read back as a numpy array either way."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(REAL()))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bytes):  # already little-endian float32
            return np.frombuffer(value, dtype="<f4").tolist() if dialect.name == "postgresql" else value
        array = np.asarray(value, dtype="<f4")
        return array.tolist() if dialect.name == "postgresql" else array.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return np.asarray(value, dtype=np.float32)
        return np.frombuffer(bytes(value), dtype="<f4")
