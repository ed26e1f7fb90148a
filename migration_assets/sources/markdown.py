"""Markdown with optional frontmatter: YAML (python-frontmatter, safe loading), TOML or JSON."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import PurePosixPath
from typing import Any

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from migration_assets.records import LegacyRecord, RecordRejection, normalise_record
from migration_assets.rules import RecordMapping
from migration_assets.sources.errors import FileRejected

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def first_heading(body: str) -> str | None:
    match = _HEADING.search(body)
    return match.group(1).strip() if match else None


MAX_FRONTMATTER_NODES = 10_000
_SAFE_TAG_PREFIX = "tag:yaml.org,2002:"
_SAFE_TAGS = {f"{_SAFE_TAG_PREFIX}{name}" for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge", "binary")}


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document would have with every alias expanded, counted without expanding it."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a node reached again while being counted is a cycle: count it once
    if node.tag not in _SAFE_TAGS:
        raise FileRejected(f"frontmatter uses the YAML tag {node.tag!r}, which is never loaded")
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[id(node)] = size
    return size


def load_yaml_frontmatter(raw: str) -> Any:
    """YAML frontmatter as plain strings, lists and mappings.

    Tags outside YAML's standard set are refused (nothing is ever constructed from them), alias
    expansion is bounded (an alias bomb is refused in microseconds), and every scalar stays the
    text it was written as: no YAML 1.1 coercions (``no`` is not false, ``012345`` is not octal,
    dates stay ISO text for the record normaliser)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(raw, Loader=loader)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FileRejected(f"invalid YAML frontmatter: {problem}") from None
    if root is None:
        return None
    if _expanded_size(root, {}) > MAX_FRONTMATTER_NODES:
        raise FileRejected(f"frontmatter expands to more than {MAX_FRONTMATTER_NODES} values (aliases); refused")
    return yaml.load(raw, Loader=getattr(yaml, "CBaseLoader", yaml.BaseLoader))


def _json_frontmatter(text: str) -> tuple[dict[str, Any], str] | None:
    """Hugo's JSON front matter: an object at the very start of the file, the body after it."""
    try:
        meta, end = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    after = text[end:].lstrip(" \t")
    if after and not after.startswith("\n"):
        return None  # more on the object's last line: not front matter
    return meta, after[1:]


def _split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    """Frontmatter and body: YAML between ``---`` lines, TOML between ``+++`` lines, or a JSON
    object at the start of the file (Hugo).

    Unlike ``frontmatter.parse`` this refuses frontmatter that is not a mapping or is never
    closed, instead of dropping it silently."""
    handler = frontmatter.detect_format(text, [YAMLHandler()])
    if text.startswith("{"):
        found = _json_frontmatter(text)
        if found is not None:
            return found
    if text.startswith("+++\n"):
        raw, separator, body = text[4:].partition("\n+++")
        if not separator:
            raise FileRejected("TOML frontmatter is never closed (no '+++' line after the opening one)")
        try:
            meta: Any = tomllib.loads(raw)
        except tomllib.TOMLDecodeError as exc:
            raise FileRejected(f"invalid TOML frontmatter: {exc}") from None
        body = body.split("\n", 1)[1] if "\n" in body else ""
    elif handler is not None:
        try:
            raw, body = handler.split(text)
        except ValueError:
            raise FileRejected("YAML frontmatter is never closed (no '---' line after the opening one)") from None
        meta = load_yaml_frontmatter(raw)
    else:
        return {}, text
    if meta is None:
        return {}, body
    if not isinstance(meta, dict):
        raise FileRejected(f"frontmatter is a {type(meta).__name__}, expected a mapping")
    return meta, body


def parse_markdown(text: str, rel_path: str, mapping: RecordMapping | None = None) -> tuple[list[LegacyRecord], list[RecordRejection]]:
    """One file is one record: its frontmatter's fields, and the body (``{body}``: the content).

    Title when no mapped field has one: the first ``#`` heading, else the file name.
    """
    if not text.strip():
        raise FileRejected("empty file")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    meta, body = _split_frontmatter(text)
    default_title = first_heading(body) or PurePosixPath(rel_path).stem
    record = normalise_record(
        meta, source_path=rel_path, source_format="markdown", record_index=0, default_title=default_title, mapping=mapping, body=body.strip("\n")
    )
    if isinstance(record, RecordRejection):
        return [], [record]
    return [record], []
