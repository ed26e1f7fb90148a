"""The one shape every result and every error takes, for the CLI's ``--json`` and the REST API
alike: ``{success, message, data, timestamp}``, or ``{success: false, error, message, details,
timestamp}`` (the spec's response formats)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any


def timestamp() -> str:
    """Now, as the envelope's ``timestamp`` (UTC, ISO 8601)."""
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def success(message: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"success": True, "message": message, "data": data, "timestamp": timestamp()}


def failure(error: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """``error`` is a kind a program can branch on (``usage_error``, ``invalid_rules``,
    ``unknown_run``, ``refused``, ``not_writable``, ``database_error``, ``failed``)."""
    return {"success": False, "error": error, "message": message, "details": details or {}, "timestamp": timestamp()}


def iso(moment: dt.datetime | None) -> str | None:
    """A time as documents show it: ISO 8601, UTC when the database gave it without a zone."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, default=str)
