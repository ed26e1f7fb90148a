"""The audit log: every API request that changed something, and every refused one, as a row of
``audit_log`` (when, who, what, on which run, with which parameters, how it ended). Secrets
never reach it: parameters are stripped of anything that looks like one. Plain Python."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, func, select

from migration_assets.documents import iso
from migration_assets.store.models import utcnow
from migration_assets.store.tables import AUDIT

SECRET_KEY = re.compile(r"token|secret|password|passwd|authorization|api[_-]?key|credential|fernet|private", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*@", re.IGNORECASE)
REDACTED = "***"


def without_secrets(value: Any, depth: int = 0) -> Any:
    """``value`` with every field whose name looks like a secret replaced, database URLs shown
    without their password, and long texts cut (the log keeps what was asked, not a payload)."""
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        return {_text(str(k)): REDACTED if SECRET_KEY.search(str(k)) else without_secrets(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, list | tuple):
        return [without_secrets(v, depth + 1) for v in list(value)[:100]]
    if isinstance(value, str):
        return _text(URL_PASSWORD.sub(rf"\1{REDACTED}@", value), 1000)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _text(str(value), 1000)


def _text(value: str, limit: int = 4000) -> str:
    """A text any database stores as given: NUL characters and lone surrogates (which PostgreSQL
    refuses) written out as escapes, cut to ``limit``."""
    value = value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate too
    return value if len(value) <= limit else value[: limit - 1] + "…"


def record(
    engine: Engine,
    *,
    action: str,
    outcome: str,
    status_code: int,
    actor: str | None = None,
    role: str | None = None,
    target_run: str | None = None,
    parameters: dict[str, Any] | None = None,
    detail: str | None = None,
    client: str | None = None,
) -> None:
    """Write one entry (its own transaction: it stays whatever the request's work did)."""
    with engine.begin() as conn:
        conn.execute(
            AUDIT.insert().values(
                at=utcnow(),
                actor=(actor or None) and _text(actor, 100),
                role=role,
                action=_text(action, 100),
                target_run=(target_run or None) and _text(target_run, 64),
                parameters=without_secrets(parameters or {}),
                outcome=outcome,
                status_code=status_code,
                detail=(detail or None) and _text(detail),
                client=(client or None) and _text(client, 100),
            )
        )


def entries(
    engine: Engine, *, limit: int = 50, before: int | None = None, actor: str | None = None, outcome: str | None = None, run: str | None = None
) -> dict[str, Any]:
    """The newest entries first, ``limit`` of them, older than entry ``before`` when given."""
    query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AUDIT.c.id < before)
    for column, wanted in ((AUDIT.c.actor, actor), (AUDIT.c.outcome, outcome), (AUDIT.c.target_run, run)):
        if wanted is not None:
            query = query.where(column == wanted)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        total = conn.execute(select(func.count()).select_from(AUDIT)).scalar_one()
    items = [
        {
            "id": row.id,
            "at": iso(row.at),
            "actor": row.actor,
            "role": row.role,
            "action": row.action,
            "target_run": row.target_run,
            "parameters": row.parameters or {},
            "outcome": row.outcome,
            "status_code": row.status_code,
            "detail": row.detail,
            "client": row.client,
        }
        for row in rows
    ]
    return {"entries": items, "limit": limit, "total": total, "next_before": items[-1]["id"] if len(items) == limit else None}
