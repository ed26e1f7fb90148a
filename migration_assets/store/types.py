"""Column types that are portable between SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import JSON, LargeBinary
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

JSONDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Vector(TypeDecorator[np.ndarray]):
    """A float32 vector: raw little-endian bytes, read back as a numpy array."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        return np.asarray(value, dtype="<f4").tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        return np.frombuffer(bytes(value), dtype="<f4")
