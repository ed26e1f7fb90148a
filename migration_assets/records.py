"""The unified record model every legacy format is normalised into, and its normalisation.

A parser hands over raw field dicts; ``normalise_record`` fills the record's columns from them
as the rules' field mapping says and turns them into a ``LegacyRecord``, or a
``RecordRejection`` with a reason. Nothing here knows about files or databases.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

from migration_assets.rules import RecordContext, RecordMapping, default_rules

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


_PLAIN = frozenset({str, int, bool, type(None)})


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
        if clean is _as_is:  # text known clean: text, numbers and null as they are, in one comprehension
            return {k if type(k) is str else str(k): v if type(v) in _PLAIN else json_safe(v, _depth + 1, clean) for k, v in value.items()}
        safe = {}
        for k, v in value.items():
            kind = type(v)  # text and plain numbers, most values, without a call each
            safe[clean(k) if type(k) is str else clean(str(k))] = (
                clean(v) if kind is str else v if (kind is int or kind is bool or v is None) else json_safe(v, _depth + 1, clean)
            )
        return safe
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
            other = _other_date_forms(text)
            return text if other is None else normalise_date(other)
    if len(text) == 10 and parsed.time() == dt.time():
        return parsed.date().isoformat()
    return normalise_date(parsed)


_SLASHED = re.compile(r"(\d{4})[/.](\d{1,2})[/.](\d{1,2})(?:[ T](.+))?\Z")
_UTC_NAMES = re.compile(r"\s*(?:UTC|GMT|Z)\Z", re.IGNORECASE)
_MONTH_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%b. %d, %Y", "%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%B %Y", "%b %Y")


def _other_date_forms(text: str) -> dt.datetime | dt.date | None:
    """Dates static-site generators and mail-era exports write that ISO parsing does not take:
    ``2023/01/29``, ``2023-01-29 18:30:22 UTC``, RFC 2822 (``Sun, 29 Jan 2023 18:30:22 -0800``)
    and English month names (``January 29, 2023``, ``29 Jan 2023``). Numeric day/month orders
    (``01/02/2023``) are ambiguous and never guessed."""
    if _UTC_NAMES.search(text):
        try:
            return dt.datetime.fromisoformat(_UTC_NAMES.sub("", text)).replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    slashed = _SLASHED.match(text)
    if slashed:
        year, month, day, rest = slashed.groups()
        try:
            if not rest:
                return dt.date(int(year), int(month), int(day))
            return dt.datetime.fromisoformat(f"{year}-{int(month):02d}-{int(day):02d} {rest}")
        except ValueError:
            return None
    if any(ch.isalpha() for ch in text):
        try:
            return parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            pass
        for form in _MONTH_FORMATS:
            try:
                return dt.datetime.strptime(text, form).date()
            except ValueError:
                continue
    return None


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
    """A text column's value: text, or a single value with an obvious text form (a number, a
    TOML date, true/false); a list or an object is an error."""
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value) if not isinstance(value, float) or math.isfinite(value) else None
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    raise TypeError(f"expected text, got {type(value).__name__}")


def sha256_text(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def _single_text(value: Any, clean: Cleaner) -> str | None:
    """A one-value column (url, type, category) given a list takes its first item: the whole list
    stays in metadata with the record's other fields."""
    if isinstance(value, (list, tuple)):
        value = next((item for item in value if item is not None and not isinstance(item, (dict, list, tuple))), None)
    return _text_field(value, clean)


def _stripped(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def normalise_record(
    raw: dict[str, Any],
    *,
    source_path: str,
    source_format: str,
    record_index: int,
    default_title: str | None = None,
    text_is_clean: bool = False,
    mapping: RecordMapping | None = None,
    body: str | None = None,
) -> LegacyRecord | RecordRejection:
    """One legacy field dict → a ``LegacyRecord``, or a rejection saying which field is wrong.

    ``mapping``: which fields fill which column (the built-in mapping for ``source_path`` when
    None). ``body``: a Markdown file's body or a text file's text (``{body}`` in the mapping).
    Every field of ``raw`` is kept in ``metadata``, mapped or not, except the one whose text
    became the content (stored once). ``text_is_clean``: the parser checked its whole text with
    ``text_is_clean``, so its fields need no ``clean_text`` one by one."""
    clean = _as_is if text_is_clean else clean_text
    if mapping is None:
        mapping = default_rules().mapping.for_path(source_path)
    resolved = mapping.resolve(raw, RecordContext(source_path, record_index, source_format, body))
    values = resolved.values
    legacy_id = normalise_id(values.get("legacy_id"), clean) or f"{source_path}#{record_index}"
    try:
        title = _text_field(values.get("title"), clean)
        content = _text_field(values.get("content"), clean)
        url = _single_text(values.get("url"), clean)
        kind = _single_text(values.get("type"), clean)
        category = _single_text(values.get("category"), clean)
    except TypeError as exc:
        return RecordRejection(source_path, record_index, f"wrong field type: {exc}", legacy_id)
    if title is not None and not title.strip():
        title = None
    if title is None and default_title:
        title = clean_text(default_title)  # a heading or a name from the parser: as unclean as the text it came from
    raw_meta = values.get("metadata")
    merged_key = resolved.keys.get("metadata", _NO_KEY) if isinstance(raw_meta, dict) else _NO_KEY
    content_key = resolved.keys.get("content", _NO_KEY)
    metadata = {str(key): value for key, value in raw.items() if key is not content_key and key is not merged_key}
    if isinstance(raw_meta, dict):
        for key, value in raw_meta.items():
            metadata[f"legacy:{key}" if key in metadata else key] = value
    try:
        safe_meta = json_safe(metadata, clean=clean)
    except ValueError as exc:
        return RecordRejection(source_path, record_index, f"metadata: {exc}", legacy_id)
    title = title.strip() if title else None
    created_at = normalise_date(values.get("created_at"), clean)
    tags = normalise_tags(values.get("tags"), clean)
    url, kind, category = _stripped(url), _stripped(kind), _stripped(category)
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


_NO_KEY: Any = object()


def _fingerprint(payload: list[Any]) -> str:
    """A hash of everything a record would write (``normalise_record``'s payload), so an unchanged
    record is never rewritten."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
