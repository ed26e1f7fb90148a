"""Reading a rules file (TOML or YAML): checked key by key, laid over the built-in defaults
(``defaults.toml``) and compiled into ``MigrationRules``.

A bad file is refused with one line that names the key and why (``RulesError``), before
anything of the source is read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml

from migration_assets.rules.mapping import (
    COLUMNS,
    Constant,
    FieldMapping,
    MappingError,
    MappingLayer,
    PathLayer,
    Source,
    Template,
    glob_pattern,
    parse_source,
)
from migration_assets.rules.model import (
    COLUMN_WIDTHS,
    DATE_POLICIES,
    SEVERITIES,
    URL_POLICIES,
    VALIDATED_COLUMNS,
    MigrationRules,
    Rule,
    Severity,
    ValidationRules,
)

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
RULES_VERSION = 1
"""The rules format, and what the rules mean: part of every rules hash."""


class RulesError(ValueError):
    """A rules file that cannot be used; the message is one line naming the key and why."""


COLUMN_KEYS = {
    "legacy_id": ("required", "max_length", "pattern", "allowed"),
    "title": ("required", "max_length", "pattern", "allowed"),
    "content": ("required", "max_length", "pattern"),
    "url": ("required", "max_length", "pattern", "allowed", "policy"),
    "type": ("required", "max_length", "pattern", "allowed"),
    "category": ("required", "max_length", "pattern", "allowed"),
    "tags": ("required", "max_length", "pattern", "allowed"),
    "created_at": ("required", "unparseable"),
}
RECORD_KEYS = ("require_any", "require_all")


def _fail(key: str, why: str) -> RulesError:
    return RulesError(f"{key}: {why}")


def _names(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values)


def read_document(path: Path) -> dict[str, Any]:
    """The rules file as plain data: TOML for ``.toml``, YAML for ``.yaml`` / ``.yml``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"rules file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"rules file {path} cannot be read: {exc}") from None
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise RulesError(f"rules file {path}: expected a .toml, .yaml or .yml file")
    try:
        if suffix == ".toml":
            document: Any = tomllib.loads(text)
        else:
            document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RulesError(f"rules file {path} is not valid {'TOML' if suffix == '.toml' else 'YAML'}: {first}") from None
    if not isinstance(document, dict):
        raise RulesError(f"rules file {path}: expected a table of settings at the top, found {type(document).__name__}")
    return document


@lru_cache(maxsize=1)
def _defaults_document() -> dict[str, Any]:
    return tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def default_rules() -> MigrationRules:
    """The built-in rules (``defaults.toml``)."""
    return _build(None, {})


def load_rules(path: str | Path | None) -> MigrationRules:
    """The rules of ``path`` laid over the defaults (the defaults alone for None); raises
    ``RulesError`` with one line naming the key and why for a file that cannot be used."""
    if path is None or str(path) == "":
        return default_rules()
    resolved = Path(path).expanduser().resolve()
    document = read_document(resolved)
    try:
        return _build(str(resolved), document)
    except RulesError as exc:
        raise RulesError(f"rules file {resolved}: {exc}") from None


def _build(source: str | None, document: dict[str, Any]) -> MigrationRules:
    effective = merge(copy.deepcopy(_defaults_document()), check_document(document))
    mapping = compile_mapping(effective["mapping"])
    validation = compile_validation(effective["validation"])
    return MigrationRules(
        source=source,
        mapping=mapping,
        validation=validation,
        document=effective,
        hash=_digest(effective),
        mapping_hash=_digest(effective["mapping"]),
        validation_hash=_digest(effective["validation"]),
    )


def _digest(part: Any) -> str:
    return hashlib.sha256(json.dumps([RULES_VERSION, part], sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


# ---- checking a document: every key known, every value of the right kind ----


def check_document(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` checked key by key; returns it (values normalised: a single source becomes a
    list of one). Raises ``RulesError`` at the first problem."""
    for key in document:
        if key not in ("version", "mapping", "validation"):
            raise _fail(str(key), "unknown key (expected version, mapping, validation)")
    if "version" in document and document["version"] != RULES_VERSION:
        raise _fail("version", f"unsupported rules version {document['version']!r} (this migration reads version {RULES_VERSION})")
    checked: dict[str, Any] = {}
    if "mapping" in document:
        checked["mapping"] = _check_mapping(_table(document["mapping"], "mapping"), "mapping", top=True)
    if "validation" in document:
        checked["validation"] = _check_validation(_table(document["validation"], "validation"))
    return checked


def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(key, f"expected a table, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a table"}.get(
        type(value), type(value).__name__
    )


def _check_mapping(table: dict[str, Any], key: str, *, top: bool) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for name, value in table.items():
        where = f"{key}.{name}"
        if name in ("set", "default"):
            checked[name] = _check_constants(_table(value, where), where)
        elif name == "paths" and top:
            if not isinstance(value, list):
                raise _fail(where, f"expected a list of tables ([[mapping.paths]]), got {_kind(value)}")
            checked[name] = [_check_path_layer(_table(layer, f"{where}[{i}]"), f"{where}[{i}]") for i, layer in enumerate(value)]
        elif name == "glob" and not top:
            checked[name] = _check_globs(value, where)
        elif name in COLUMNS:
            checked[name] = _check_sources(value, where)
        else:
            extra = ", set, default" + (", paths" if top else ", glob")
            raise _fail(where, f"unknown column {name!r} (columns: {_names(COLUMNS)}{extra})")
    return checked


def _check_path_layer(table: dict[str, Any], key: str) -> dict[str, Any]:
    if "glob" not in table:
        raise _fail(f"{key}.glob", "missing: each [[mapping.paths]] needs a glob of the files it applies to")
    return _check_mapping(table, key, top=False)


def _check_globs(value: Any, key: str) -> list[str]:
    globs = [value] if isinstance(value, str) else value
    if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
        raise _fail(key, f"expected a glob or a list of globs (text), got {_kind(value)}")
    try:
        glob_pattern(globs)
    except MappingError as exc:
        raise _fail(key, str(exc)) from None
    return globs


def _check_sources(value: Any, key: str) -> list[str]:
    sources = [value] if isinstance(value, str) else value
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise _fail(key, f"expected a list of field names, paths or templates (text), got {_kind(value)}")
    for i, source in enumerate(sources):
        try:
            parse_source(source)
        except MappingError as exc:
            raise _fail(f"{key}[{i}]", str(exc)) from None
    return sources


def _check_constants(table: dict[str, Any], key: str) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for column, value in table.items():
        where = f"{key}.{column}"
        if column not in COLUMNS or column == "metadata":
            raise _fail(where, f"unknown column {column!r} (columns: {_names(COLUMNS[:-1])})")
        values = value if isinstance(value, list) and column == "tags" else [value]
        if not all(isinstance(v, str) for v in values):
            expected = "text or a list of text" if column == "tags" else "text (a value or a template)"
            raise _fail(where, f"expected {expected}, got {_kind(value)}")
        for v in values:
            try:
                Template.parse(v)
            except MappingError as exc:
                raise _fail(where, str(exc)) from None
        checked[column] = value
    return checked


def _check_validation(table: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for column, settings in table.items():
        where = f"validation.{column}"
        if column == "record":
            checked[column] = _check_record_rules(_table(settings, where), where)
            continue
        if column not in COLUMN_KEYS:
            raise _fail(where, f"unknown column {column!r} (columns: {_names(VALIDATED_COLUMNS)}, record)")
        checked[column] = _check_column_rules(column, _table(settings, where), where)
    return checked


def _split(value: Any, key: str) -> tuple[Any, str | None]:
    """A setting and its own severity: ``300`` or ``{ value = 300, severity = "warn" }``."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"value", "severity"})
        if unknown:
            raise _fail(f"{key}.{unknown[0]}", "unknown key (a rule given as a table has value and severity)")
        if "value" not in value:
            raise _fail(f"{key}.value", "missing (a rule given as a table has value and severity)")
        severity = value.get("severity")
        if severity is not None and severity not in SEVERITIES:
            raise _fail(f"{key}.severity", f"unknown severity {severity!r} (expected {' or '.join(SEVERITIES)})")
        return value["value"], severity
    return value, None


def _check_column_rules(column: str, table: dict[str, Any], key: str) -> dict[str, Any]:
    allowed_keys = (*COLUMN_KEYS[column], "severity")
    for name, raw in table.items():
        where = f"{key}.{name}"
        if name not in allowed_keys:
            raise _fail(where, f"unknown rule for {column} (expected one of {_names(allowed_keys)})")
        if name == "severity":
            if raw not in SEVERITIES:
                raise _fail(where, f"unknown severity {raw!r} (expected {' or '.join(SEVERITIES)})")
            continue
        value, _ = _split(raw, where)
        if value is False and name not in ("required",):
            continue  # switches a default rule off
        if name == "required" and not isinstance(value, bool):
            raise _fail(where, f"expected true or false, got {_kind(value)}")
        if name == "max_length":
            if type(value) is not int or value < 1:
                raise _fail(where, f"expected a whole number of characters of at least 1, got {value!r}")
            width = COLUMN_WIDTHS.get(column)
            if width and value > width:
                raise _fail(where, f"{value} is more than the column holds ({width} characters)")
        if name == "pattern":
            if not isinstance(value, str):
                raise _fail(where, f"expected a regular expression (text), got {_kind(value)}")
            try:
                re.compile(value)
            except re.error as exc:
                raise _fail(where, f"bad regular expression {value!r}: {exc}") from None
        if name == "allowed" and (not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value)):
            raise _fail(where, f"expected a non-empty list of allowed values (text), got {_kind(value)}")
        if name == "policy" and value not in URL_POLICIES:
            raise _fail(where, f"unknown URL policy {value!r} (expected {_names(URL_POLICIES)})")
        if name == "unparseable" and value not in DATE_POLICIES:
            raise _fail(where, f"unknown date policy {value!r} (expected {' or '.join(DATE_POLICIES)})")
    return table


def _check_record_rules(table: dict[str, Any], key: str) -> dict[str, Any]:
    for name, raw in table.items():
        where = f"{key}.{name}"
        if name == "severity":
            if raw not in SEVERITIES:
                raise _fail(where, f"unknown severity {raw!r} (expected {' or '.join(SEVERITIES)})")
            continue
        if name not in RECORD_KEYS:
            raise _fail(where, f"unknown record rule (expected one of {_names(RECORD_KEYS)}, severity)")
        value, _ = _split(raw, where)
        if value is False:
            continue
        if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
            raise _fail(where, f"expected a non-empty list of columns, got {_kind(value)}")
        unknown = [c for c in value if c not in VALIDATED_COLUMNS]
        if unknown:
            raise _fail(where, f"unknown column {unknown[0]!r} (columns: {_names(VALIDATED_COLUMNS)})")
    return table


# ---- merging over the defaults, and compiling ----


def merge(defaults: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The effective rules: ``settings`` over ``defaults``. A column's list of sources replaces the
    default list; validation settings replace the default's one by one."""
    mapping = defaults.setdefault("mapping", {})
    for name, value in settings.get("mapping", {}).items():
        if name in ("set", "default"):
            mapping.setdefault(name, {}).update(value)
        else:
            mapping[name] = value
    validation = defaults.setdefault("validation", {})
    for column, rules in settings.get("validation", {}).items():
        validation.setdefault(column, {}).update(rules)
    return defaults


def _layer(table: dict[str, Any]) -> MappingLayer:
    def constants(values: dict[str, Any]) -> dict[str, Constant]:
        return {column: tuple(Template.parse(v) for v in (value if isinstance(value, list) else [value])) for column, value in values.items()}

    sources: dict[str, tuple[Source, ...]] = {
        column: tuple(parse_source(s) for s in ([value] if isinstance(value, str) else value)) for column, value in table.items() if column in COLUMNS
    }
    return MappingLayer(sources, constants(table.get("set", {})), constants(table.get("default", {})))


def compile_mapping(table: dict[str, Any]) -> FieldMapping:
    paths = []
    for layer in table.get("paths", []):
        globs = [layer["glob"]] if isinstance(layer["glob"], str) else layer["glob"]
        paths.append(PathLayer(tuple(globs), glob_pattern(globs), _layer(layer)))
    return FieldMapping(_layer(table), tuple(paths))


def compile_validation(table: dict[str, Any]) -> ValidationRules:
    rules: list[Rule] = []
    for column in VALIDATED_COLUMNS:
        settings = table.get(column, {})
        column_severity = settings.get("severity", "error")
        kinds = {name: value for name, value in settings.items() if name != "severity"}
        for kind in COLUMN_KEYS[column]:
            if kind not in kinds:
                continue
            value, severity = _split(kinds[kind], f"validation.{column}.{kind}")
            if value is False or (kind == "policy" and value == "any"):
                continue
            if kind == "unparseable":
                severity = "warn" if value == "warn" else "error"
            frozen = tuple(value) if isinstance(value, list) else value
            rules.append(Rule(f"{column}.{kind}", kind, column, frozen, cast(Severity, severity or column_severity)))
        width = COLUMN_WIDTHS.get(column)
        limit = next((r for r in rules if r.column == column and r.kind == "max_length"), None)
        if width and (limit is None or limit.severity != "error"):
            rules.append(Rule(f"{column}.width", "width", column, width, "error"))
    rules.append(Rule("legacy_id.unique", "unique", "legacy_id", True, "error"))
    record = table.get("record", {})
    record_severity = record.get("severity", "error")
    for kind in RECORD_KEYS:
        if kind in record:
            value, severity = _split(record[kind], f"validation.record.{kind}")
            if value is not False:
                rules.append(Rule(f"record.{kind}", kind, None, tuple(value), cast(Severity, severity or record_severity)))
    return ValidationRules(tuple(rules))
