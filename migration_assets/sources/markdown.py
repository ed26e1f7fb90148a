"""Markdown with optional YAML frontmatter (python-frontmatter, safe loading)."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath
from typing import Any

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from migration_assets.records import LegacyRecord, RecordRejection, normalise_record
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


def _split_frontmatter(text: str) -> tuple[dict[str, Any], str]:
    """Frontmatter and body: YAML between ``---`` lines, or TOML between ``+++`` lines.

    Unlike ``frontmatter.parse`` this refuses frontmatter that is not a mapping or is never
    closed, instead of dropping it silently."""
    handler = frontmatter.detect_format(text, [YAMLHandler()])
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


def parse_markdown(text: str, rel_path: str) -> tuple[list[LegacyRecord], list[RecordRejection]]:
    """One file is one record: frontmatter fields + the body as content.

    Title: frontmatter ``title``, else the first ``#`` heading, else the file name.
    """
    if not text.strip():
        raise FileRejected("empty file")
    text = text.replace("\r\n", "\n")
    meta, body = _split_frontmatter(text)
    # the body is the content: frontmatter fields that mean "content" (description, text, body)
    # come after it, so they are kept in metadata instead of replacing it
    fields: dict[str, Any] = {"content": body.strip("\n"), **{k: v for k, v in meta.items() if str(k).strip().lower() != "content"}}
    if "content" in meta:
        fields["frontmatter:content"] = meta["content"]
    default_title = first_heading(body) or PurePosixPath(rel_path).stem
    record = normalise_record(fields, source_path=rel_path, source_format="markdown", record_index=0, default_title=default_title)
    if isinstance(record, RecordRejection):
        return [], [record]
    return [record], []
