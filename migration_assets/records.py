"""The unified record model every legacy format is normalised into, and its normalisation.

A parser hands over raw field dicts; ``normalise_record`` turns one into a ``LegacyRecord``
or a ``RecordRejection`` with a reason. Nothing here knows about files or databases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

KNOWN_FIELDS = ("id", "title", "content", "url", "type", "created_at", "tags", "category", "metadata")
FIELD_ALIASES: dict[str, str] = {
    "legacy_id": "id",
    "_id": "id",
    "uuid": "id",
    "name": "title",
    "subject": "title",
    "headline": "title",
    "body": "content",
    "text": "content",
    "description": "content",
    "link": "url",
    "href": "url",
    "kind": "type",
    "content_type": "type",
    "date": "created_at",
    "created": "created_at",
    "createdat": "created_at",
    "published": "created_at",
    "published_at": "created_at",
    "labels": "tags",
    "keywords": "tags",
    "section": "category",
    "meta": "metadata",
}
_INVISIBLE = re.compile("[\x00\ud800-\udfff]")


class LegacyRecord(NamedTuple):
    """One legacy record in the shape of the target's content item.

    A tuple, not a dataclass: batches of them are staged between stages, and tuples pickle at
    about half the cost."""

    legacy_id: str
    source_path: str
    source_format: str
    record_index: int
    title: str | None
    content: str | None
    url: str | None
    type: str | None
    created_at: str | None
    tags: list[str]
    category: str | None
    metadata: dict[str, Any]
    content_hash: str
    record_hash: str

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


@dataclass
class RecordRejection:
    """A record that cannot be migrated, with the reason a person can act on."""

    source_path: str
    record_index: int
    reason: str
    legacy_id: str | None = None
    raw: str | None = None


def clean_text(value: str) -> str:
    """Drop what no target database stores faithfully: NUL characters and lone surrogates."""
    if _INVISIBLE.search(value) is None:
        return value
    value = value.replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8") if _INVISIBLE.search(value) else value


def _as_is(value: str) -> str:
    return value


Cleaner = Callable[[str], str]
_ESCAPED_INVISIBLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def text_is_clean(text: str, *, json_escapes: bool = False) -> bool:
    """Whether every string parsed out of ``text`` is already what ``clean_text`` returns, so a
    parser may skip cleaning its fields one by one. Decoded file text holds no lone surrogates
    (every decoder we use is strict), so only a NUL can spoil it, or with ``json_escapes`` a
    ``\\u0000`` or surrogate escape that the JSON decoder turns into one."""
    if "\x00" in text:
        return False
    return not (json_escapes and "\\u" in text and _ESCAPED_INVISIBLE.search(text))


def json_safe(value: Any, _depth: int = 0, clean: Cleaner = clean_text) -> Any:
    """A JSON-serialisable copy: dates become ISO strings, NaN/Infinity become None."""
    if _depth > 64:
        raise ValueError("value nested deeper than 64 levels")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {clean(str(k)): json_safe(v, _depth + 1, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v, _depth + 1, clean) for v in items]
    if isinstance(value, bytes):
        return clean_text(value.decode("utf-8", "replace"))
    return clean_text(str(value))


def normalise_id(value: Any, clean: Cleaner = clean_text) -> str | None:
    """Legacy ids arrive as ints or strings; both become a stripped string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        value = clean(value).strip()
        return value or None
    return None


def normalise_tags(value: Any, clean: Cleaner = clean_text) -> list[str]:
    """Tags arrive as a list, a ``|``- or comma-separated string, or nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        sep = "|" if "|" in value else ","
        parts: list[Any] = value.split(sep)
    elif isinstance(value, (list, tuple, set)):
        parts = list(value)
    else:
        parts = [value]
    tags: list[str] = []
    for part in parts:
        if part is None or isinstance(part, (dict, list)):
            continue
        tag = (clean(part) if type(part) is str else clean_text(str(part))).strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


_EPOCH_MAX = 253402300799  # 9999-12-31
_CANONICAL_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z", re.ASCII)


def normalise_date(value: Any, clean: Cleaner = clean_text) -> str | None:
    """An ISO 8601 string for any date shape legacy data holds; the raw text if unparseable.

    Aware datetimes are converted to UTC; naive ones are taken as UTC. Plain dates stay dates.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        try:
            return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC time: keep its own text
            return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or not 0 <= value <= _EPOCH_MAX:
            return str(value)
        return normalise_date(dt.datetime.fromtimestamp(value, tz=dt.UTC))
    text = (clean(value) if type(value) is str else clean_text(str(value))).strip()
    if not text:
        return None
    if len(text) == 20 and _CANONICAL_UTC.match(text):
        return text  # already what this returns for it, whether it is a real moment or not (the raw text)
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            return text
    if len(text) == 10 and parsed.time() == dt.time():
        return parsed.date().isoformat()
    return normalise_date(parsed)


def parse_iso(value: str | None) -> dt.datetime | None:
    """The datetime an ISO string written by ``normalise_date`` stands for (UTC)."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _text_field(value: Any, clean: Cleaner) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value) if not isinstance(value, float) or math.isfinite(value) else None
    raise TypeError(f"expected text, got {type(value).__name__}")


def sha256_text(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


_FIELD_NAMES: dict[str, str] = {}


def _field_name(key: Any) -> str:
    """The unified field a legacy key stands for (aliases and case folded), or the key itself."""
    if type(key) is str:
        name = _FIELD_NAMES.get(key)
        if name is None:
            name = key.strip().lower()
            name = FIELD_ALIASES.get(name, name)
            if len(_FIELD_NAMES) < 10_000:  # legacy headers repeat in every row; keys of odd exports may not
                _FIELD_NAMES[key] = name
        return name
    name = str(key).strip().lower() if key is not None else ""
    return FIELD_ALIASES.get(name, name)


def normalise_record(
    raw: dict[str, Any],
    *,
    source_path: str,
    source_format: str,
    record_index: int,
    default_title: str | None = None,
    text_is_clean: bool = False,
) -> LegacyRecord | RecordRejection:
    """One legacy field dict → a ``LegacyRecord``, or a rejection saying which field is wrong.

    ``text_is_clean``: the parser checked its whole text with ``text_is_clean``, so its fields
    need no ``clean_text`` one by one."""
    clean = _as_is if text_is_clean else clean_text
    fields: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in raw.items():
        name = _field_name(key)
        if name in KNOWN_FIELDS and name not in fields:
            fields[name] = value
        else:
            extras[str(key)] = value
    try:
        title = _text_field(fields.get("title"), clean)
        content = _text_field(fields.get("content"), clean)
        url = _text_field(fields.get("url"), clean)
        kind = _text_field(fields.get("type"), clean)
        category = _text_field(fields.get("category"), clean)
    except TypeError as exc:
        return RecordRejection(source_path, record_index, f"wrong field type: {exc}", normalise_id(fields.get("id"), clean))
    if title is not None and not title.strip():
        title = None
    if title is None and default_title:
        title = default_title
    legacy_id = normalise_id(fields.get("id"), clean) or f"{source_path}#{record_index}"
    if fields.get("id") is not None and normalise_id(fields.get("id"), clean) is None:
        extras["legacy:id"] = fields["id"]  # an id we cannot use (12.5, an object): kept, never dropped
    raw_meta = fields.get("metadata")
    metadata: dict[str, Any] = {}
    for key, value in extras.items():
        metadata[key] = value
    if isinstance(raw_meta, dict):
        for key, value in raw_meta.items():
            metadata[f"legacy:{key}" if key in extras else key] = value
    elif raw_meta is not None:
        metadata["legacy:metadata"] = raw_meta
    try:
        safe_meta = json_safe(metadata, clean=clean)
    except ValueError as exc:
        return RecordRejection(source_path, record_index, f"metadata: {exc}", legacy_id)
    title = title.strip() if title else None
    url = url.strip() if url and url.strip() else None
    kind = kind.strip() if kind and kind.strip() else None
    created_at = normalise_date(fields.get("created_at"), clean)
    tags = normalise_tags(fields.get("tags"), clean)
    category = category.strip() if category and category.strip() else None
    content_hash = sha256_text(content)
    # the record hash covers everything the record writes, so an unchanged record is never rewritten
    fingerprint = _fingerprint([source_path, source_format, title, content_hash, url, kind, created_at, tags, category, safe_meta])
    return LegacyRecord(
        legacy_id,
        source_path,
        source_format,
        record_index,
        title,
        content,
        url,
        kind,
        created_at,
        tags,
        category,
        safe_meta,
        content_hash,
        fingerprint,
    )


def _fingerprint(payload: list[Any]) -> str:
    """A hash of everything a record would write (``normalise_record``'s payload), so an unchanged
    record is never rewritten."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
