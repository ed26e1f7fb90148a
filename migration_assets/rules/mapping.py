"""Field mapping: which legacy field fills which target column, globally and per glob of paths.

Each column has an ordered list of sources, and takes the first that has a value: a field name
(matched without regard to case or surrounding spaces), a path into nested fields
(``params.section``, ``categories[0]``, ``extra.team``) or a template (``{path}#{index}``,
``{slug}``, ``/{dir}/{stem}/``). Nothing here knows about files on disk or databases.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, NamedTuple

COLUMNS = ("legacy_id", "title", "content", "url", "type", "category", "tags", "created_at", "metadata")
"""The target columns a mapping fills (``metadata``: a legacy field holding more metadata, merged in)."""

BUILTINS = {
    "path": "the file's path under the source directory",
    "index": "the record's position in its file (0 for a Markdown or text file; a JSON Lines line number)",
    "stem": "the file name without its extension",
    "dir": "the folder of the file under the source directory ('' at the top)",
    "format": "the parser that read it (json, jsonl, markdown, text, csv)",
    "body": "the body of a Markdown file, or the whole of a text file",
    "slug": "the record's own 'slug' field, else the file name without extension and without a leading YYYY-MM-DD- date",
}
"""Placeholders a template may use beside field paths (a field of the same name comes first for ``slug``)."""


class MappingError(ValueError):
    """A source or glob that cannot be understood; the message says which and why."""


MISSING: Any = object()
_PATH = re.compile(r"[^.\[\]{}]+(?:\.[^.\[\]{}]+|\[\d+\])*\Z")
_STEP = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


_FOLDED: dict[str, str] = {}


def fold(key: Any) -> str:
    """A field name as mappings match it: without surrounding spaces, in lower case."""
    if type(key) is str:
        name = _FOLDED.get(key)
        if name is None:
            name = key.strip().lower()
            if len(_FOLDED) < 10_000:  # legacy headers repeat in every row; keys of odd exports may not
                _FOLDED[key] = name
        return name
    return str(key).strip().lower()


class RecordFields:
    """A record's fields, with the case-folded view that paths and placeholders look names up in
    (built only when one does: most records are mapped by their plain field names alone)."""

    __slots__ = ("_folded", "raw")

    def __init__(self, raw: Mapping[Any, Any]) -> None:
        self.raw = raw
        self._folded: dict[str, Any] | None = None

    def folded(self) -> dict[str, Any]:
        if self._folded is None:
            self._folded = {}
            for key, value in self.raw.items():
                self._folded.setdefault(fold(key), value)
        return self._folded


@dataclass(frozen=True)
class FieldPath:
    """A field name, or a path into nested fields: ``params.section``, ``categories[0]``."""

    text: str
    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        if not _PATH.match(text):
            raise MappingError(f"{text!r} is not a field name or a path like params.section or categories[0]")
        steps = tuple(int(index) if index else name.strip() for index, name in _STEP.findall(text))
        if any(step == "" for step in steps):
            raise MappingError(f"{text!r} is not a field name or a path like params.section or categories[0]")
        return cls(text, steps)

    @property
    def simple(self) -> bool:
        return len(self.steps) == 1

    def lookup(self, fields: RecordFields) -> Any:
        """The value at this path, or ``MISSING``. A whole name that is a key of the record wins
        over a path (a CSV header ``a.b`` is a field, not a path); keys match without regard to
        case; index 0 of a single value is that value (``categories[0]`` of ``categories: news``)."""
        raw = fields.raw
        if self.text in raw:
            return raw[self.text]
        value: Any = fields.folded().get(fold(self.text), MISSING)
        if value is not MISSING or self.simple:
            return value
        value = raw
        for step in self.steps:
            if isinstance(step, int):
                if isinstance(value, (list, tuple)):
                    value = value[step] if step < len(value) else MISSING
                elif step != 0 or isinstance(value, dict):
                    value = MISSING
            elif isinstance(value, dict):
                value = value[step] if step in value else _folded_get(value, step)
            else:
                value = MISSING
            if value is MISSING or value is None:
                return MISSING
        return value


def _folded_get(obj: dict[Any, Any], key: str) -> Any:
    wanted = fold(key)
    for candidate, value in obj.items():
        if fold(candidate) == wanted:
            return value
    return MISSING


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_DATED = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}-(.+)$")


class RecordContext:
    """What a template knows about a record beside its fields (one per record: a plain slotted
    class, cheaper to make than a dataclass)."""

    __slots__ = ("body", "format", "index", "path")

    def __init__(self, path: str, index: int, format: str, body: str | None = None) -> None:
        self.path = path
        self.index = index
        self.format = format
        self.body = body

    def builtin(self, name: str, fields: RecordFields) -> Any:
        if name == "path":
            return self.path
        if name == "index":
            return str(self.index)
        if name == "format":
            return self.format
        if name == "body":
            return self.body
        pure = PurePosixPath(self.path)
        if name == "dir":
            return "" if str(pure.parent) == "." else str(pure.parent)
        stem = pure.stem
        if name == "stem":
            return stem
        if name == "slug":
            own = fields.raw.get("slug", MISSING)
            if own is MISSING:
                own = fields.folded().get("slug", MISSING)
            if present(own) and isinstance(own, (str, int)):
                return str(own).strip()
            dated = _DATED.match(stem)
            return dated.group(1) if dated else stem
        return MISSING


@dataclass(frozen=True)
class Template:
    """Text with ``{placeholders}``: a builtin (``BUILTINS``) or a field path. ``{{`` and ``}}``
    are literal braces. A placeholder without a value leaves the template without one."""

    text: str
    parts: tuple[str | FieldPath, ...]  # literal text, or a placeholder as a path

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str | FieldPath] = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            if match.start() > position:
                parts.append(text[position : match.start()])
            token = match.group(0)
            if token in ("{{", "}}"):
                parts.append(token[0])
            elif match.group(1) is None:
                raise MappingError(f"template {text!r} has an unmatched {token!r} (write {token * 2} for a literal brace)")
            else:
                name = match.group(1).strip()
                if not name:
                    raise MappingError(f"template {text!r} has an empty placeholder {{}}")
                parts.append(FieldPath.parse(name))
            position = match.end()
        if position < len(text):
            parts.append(text[position:])
        return cls(text, tuple(parts))

    def render(self, fields: RecordFields, context: RecordContext) -> str | None:
        if len(self.parts) == 1 and type(part := self.parts[0]) is FieldPath and part.text in ("body", "path"):
            value = context.body if part.text == "body" else context.path  # the common templates, without the general walk
            return value if present(value) else None
        pieces: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            value = MISSING
            if part.simple and part.text in BUILTINS and part.text != "slug":
                value = context.builtin(part.text, fields)
            else:
                value = part.lookup(fields)
                if not present(value) and part.simple and part.text == "slug":
                    value = context.builtin("slug", fields)
            if not present(value) or isinstance(value, (dict, list, tuple)):
                return None
            pieces.append(value if isinstance(value, str) else str(value))
        return "".join(pieces)


Source = FieldPath | Template


def parse_source(text: str) -> Source:
    """A mapping entry: a template when it holds a ``{``, else a field name or path."""
    return Template.parse(text) if "{" in text or "}" in text else FieldPath.parse(text)


def present(value: Any, column: str | None = None) -> bool:
    """Whether a value counts as given: not missing, None, blank text or an empty list or object;
    for ``legacy_id``, only text or a whole number (an id of 12.5 or an object is no id, and the
    next source is tried; the value stays in metadata with every other field)."""
    if value is MISSING or value is None:
        return False
    if column == "legacy_id" and not (
        (isinstance(value, (str, int)) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    ):
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    return True


Constant = tuple[Template, ...]
"""A value a mapping sets: one template, or (for tags) several."""


@dataclass(frozen=True)
class MappingLayer:
    """Sources per column, plus values set outright (``set``) or used when no source has one
    (``default``). The global mapping is one layer; each glob of paths may add another."""

    sources: Mapping[str, tuple[Source, ...]] = field(default_factory=dict)
    set: Mapping[str, Constant] = field(default_factory=dict)
    default: Mapping[str, Constant] = field(default_factory=dict)


@dataclass(frozen=True)
class PathLayer:
    globs: tuple[str, ...]
    pattern: re.Pattern[str]
    layer: MappingLayer

    def matches(self, rel_path: str) -> bool:
        return self.pattern.match(rel_path) is not None


def glob_pattern(globs: Sequence[str]) -> re.Pattern[str]:
    """One regular expression for globs of relative paths: ``*`` any characters but ``/``, ``**``
    any folders (``blog/**``: everything under blog; ``**/*.md``: Markdown anywhere), ``?`` one
    character, ``[abc]`` a class. A glob without ``/`` matches the file name in any folder."""
    alternatives = []
    for glob in globs:
        text = glob.strip().lstrip("/")
        if not text:
            raise MappingError("an empty glob matches nothing")
        if "/" not in text.rstrip("/"):
            text = "**/" + text
        if text.endswith("/"):
            text += "**"
        alternatives.append(_glob_regex(text))
    return re.compile("(?:" + "|".join(alternatives) + r")\Z", re.DOTALL)


def _glob_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                raise MappingError(f"glob {glob!r} has an unclosed '['")
            body = glob[i + 1 : end]
            out.append("[" + ("^" + re.escape(body[1:]) if body.startswith("!") else re.escape(body)) + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


class Resolved(NamedTuple):
    """A record's fields as the mapping resolved them: a value per column that has one, and for
    each column filled from a top-level field, that field's key."""

    values: dict[str, Any]
    keys: dict[str, Any]


@dataclass(frozen=True)
class RecordMapping:
    """The mapping in force for one file: every layer that applies to its path, merged."""

    sources: Mapping[str, tuple[Source, ...]]
    set: Mapping[str, Constant]
    default: Mapping[str, Constant]
    by_name: dict[str, tuple[tuple[str, int], ...]] = field(init=False, repr=False, compare=False)
    """Simple field names (folded) → (column, position among its sources): found in one pass over a record's keys."""
    rest: tuple[tuple[str, Constant | None, tuple[tuple[int, Source], ...], Constant | None], ...] = field(init=False, repr=False, compare=False)
    """Per column that has them: its set value, its paths and templates (with their positions), its default."""

    def __post_init__(self) -> None:
        names: dict[str, dict[str, int]] = {}
        rest = []
        for column in COLUMNS:
            others = []
            for position, source in enumerate(self.sources.get(column, ())):
                if isinstance(source, FieldPath) and source.simple:
                    names.setdefault(fold(source.text), {}).setdefault(column, position)
                else:
                    others.append((position, source))
            if others or column in self.set or column in self.default:
                rest.append((column, self.set.get(column), tuple(others), self.default.get(column)))
        object.__setattr__(self, "by_name", {name: tuple(hits.items()) for name, hits in names.items()})
        object.__setattr__(self, "rest", tuple(rest))

    def resolve(self, raw: Mapping[Any, Any], context: RecordContext) -> Resolved:
        """Each column's value for ``raw``: set outright, else from the first source with a value,
        else its default. One pass over the record's keys finds every plain field name."""
        best: dict[str, tuple[int, Any, Any]] = {}  # column → (position in its sources, value, key)
        names = self.by_name
        folded_names = _FOLDED
        for key, value in raw.items():
            hits = names.get(folded_names.get(key) or fold(key))
            if hits is None:
                continue
            kind = type(value)  # present(), inlined for the values most fields hold
            if (kind is str and (not value or value.isspace())) or value is None or ((kind is list or kind is dict) and not value):
                continue
            for column, position in hits:
                if (column not in best or position < best[column][0]) and (column != "legacy_id" or present(value, column)):
                    best[column] = (position, value, key)
        values = {column: found[1] for column, found in best.items()}
        keys = {column: found[2] for column, found in best.items()}
        fields = RecordFields(raw)  # slotted, and its folded view built only if a path asks
        for column, constant, others, fallback in self.rest:
            if constant is not None:
                rendered = _render(constant, fields, context, column)
                if rendered is not None:
                    values[column] = rendered
                    keys.pop(column, None)
                    continue
            limit = best[column][0] if column in best else len(self.sources.get(column, ()))
            for position, source in others:
                if position >= limit:
                    break
                value = source.render(fields, context) if isinstance(source, Template) else source.lookup(fields)
                if present(value, column):
                    values[column] = value
                    keys.pop(column, None)
                    break
            if column not in values and fallback is not None:
                rendered = _render(fallback, fields, context, column)
                if rendered is not None:
                    values[column] = rendered
        return Resolved(values, keys)


def _render(constant: Constant, fields: RecordFields, context: RecordContext, column: str) -> Any:
    texts = [text for text in (t.render(fields, context) for t in constant) if text is not None]
    if column == "tags":
        return texts or None
    return texts[0] if texts else None


@dataclass(frozen=True)
class FieldMapping:
    """The whole mapping of a rules file: the global layer and the per-glob layers, in order (a
    later layer that names a column overrides an earlier one for the files it matches)."""

    base: MappingLayer
    paths: tuple[PathLayer, ...] = ()

    _merged: dict[tuple[int, ...], RecordMapping] = field(default_factory=dict, init=False, repr=False, compare=False)

    def for_path(self, rel_path: str) -> RecordMapping:
        matching = tuple(i for i, layer in enumerate(self.paths) if layer.matches(rel_path))
        merged = self._merged.get(matching)
        if merged is None:
            sources, set_, default = dict(self.base.sources), dict(self.base.set), dict(self.base.default)
            for i in matching:
                layer = self.paths[i].layer
                for column in layer.sources:  # a glob's own sources for a column outrank a value set for it before
                    set_.pop(column, None)
                sources.update(layer.sources)
                set_.update(layer.set)
                default.update(layer.default)
            merged = self._merged[matching] = RecordMapping(sources, set_, default)
        return merged
