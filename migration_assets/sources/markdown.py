"""Markdown with optional YAML frontmatter (python-frontmatter, safe loading)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import frontmatter
import yaml

from migration_assets.records import LegacyRecord, RecordRejection, normalise_record
from migration_assets.sources.errors import FileRejected

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def first_heading(body: str) -> str | None:
    match = _HEADING.search(body)
    return match.group(1).strip() if match else None


def _split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    """Frontmatter (YAML via libyaml's safe loader, or TOML/JSON where python-frontmatter knows it)
    and body. Unlike ``frontmatter.parse`` this refuses frontmatter that is not a mapping
    instead of dropping it silently."""
    handler = frontmatter.detect_format(text, frontmatter.handlers)
    if handler is None:
        return {}, text
    try:
        raw, body = handler.split(text)
        meta = handler.load(raw)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileRejected(f"invalid YAML frontmatter: {problem}") from None
    except (ValueError, TypeError) as exc:
        raise FileRejected(f"invalid frontmatter: {exc}") from None
    if meta is None:
        return {}, body
    if not isinstance(meta, dict):
        raise FileRejected(f"frontmatter is a {type(meta).__name__}, expected a mapping")
    return meta, body


def parse_markdown(text: str, rel_path: str) -> tuple[list[LegacyRecord], list[RecordRejection]]:
    """One file is one record: frontmatter fields + the body as content.

    Title: frontmatter ``title``, else the first ``#`` heading, else the file name.
    """
    if not text.strip():
        raise FileRejected("empty file")
    text = text.replace("\r\n", "\n")
    meta, body = _split_frontmatter(text)
    fields: dict[str, Any] = dict(meta)
    fields["content"] = body.strip("\n")
    default_title = first_heading(body) or PurePosixPath(rel_path).stem
    record = normalise_record(fields, source_path=rel_path, source_format="markdown", record_index=0, default_title=default_title)
    if isinstance(record, RecordRejection):
        return [], [record]
    return [record], []
