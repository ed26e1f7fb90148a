"""Small helpers that turn stage figures into Dagster metadata values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg


def counts_metadata(counts: Mapping[str, Any], prefix: str = "") -> dict[str, dg.MetadataValue]:
    return {f"{prefix}{key}": dg.MetadataValue.int(int(value)) for key, value in counts.items() if isinstance(value, int)}


def table_preview(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], limit: int = 10) -> dg.MetadataValue:
    """A markdown table of the first ``limit`` rows."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(str(row.get(c, "")).replace("|", "\\|").replace("\n", " ")[:80] for c in columns) + " |\n" for row in rows[:limit]
    )
    return dg.MetadataValue.md(head + body)
