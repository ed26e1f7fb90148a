"""The rules file: field mapping (names, paths, templates, globs), validation rules of every kind
and severity, and a bad file refused with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_assets.records import LegacyRecord, normalise_record
from migration_assets.rules import RulesError, default_rules, load_rules
from migration_assets.rules.mapping import glob_pattern
from migration_assets.validation import validate_records


def rules_file(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def record(raw: dict, rules=None, *, path: str = "a/b.json", index: int = 0, fmt: str = "json", body: str | None = None) -> LegacyRecord:
    mapping = (rules or default_rules()).mapping.for_path(path)
    result = normalise_record(raw, source_path=path, source_format=fmt, record_index=index, mapping=mapping, body=body)
    assert isinstance(result, LegacyRecord), result
    return result


def verdicts(rules, *raws: dict) -> dict[int, list[tuple[str, str]]]:
    batch = [record(raw, rules, index=i) for i, raw in enumerate(raws)]
    return {i: [(v.rule, v.severity) for v in found] for i, found in validate_records(batch, rules.validation).items()}


# ---- mapping ----


def test_the_built_in_aliases_are_the_default_mapping_in_the_rules_file_format():
    from migration_assets.rules import DEFAULTS_FILE

    assert DEFAULTS_FILE.suffix == ".toml" and "[mapping]" in DEFAULTS_FILE.read_text()
    r = record({"name": "T", "body": "B", "link": "https://x", "labels": "a,b", "date": "2021-02-03", "section": "s", "kind": "k", "uuid": "u-1"})
    assert (r.legacy_id, r.title, r.content, r.url, r.tags, r.created_at, r.category, r.type) == (
        "u-1", "T", "B", "https://x", ["a", "b"], "2021-02-03", "s", "k",
    )  # fmt: skip


def test_a_column_takes_the_first_of_its_sources_that_has_a_value(tmp_path):
    rules = load_rules(rules_file(tmp_path, '[mapping]\nurl = ["permalink", "url"]\ntitle = ["headline", "title"]\n'))
    assert record({"url": "/u/", "permalink": "/p/"}, rules).url == "/p/"
    assert record({"url": "/u/", "permalink": ""}, rules).url == "/u/"  # blank counts as missing
    assert record({"title": "T", "headline": None}, rules).title == "T"
    assert record({"Title": "case does not matter"}, rules).title == "case does not matter"


def test_paths_reach_into_nested_fields_and_lists(tmp_path):
    rules = load_rules(
        rules_file(tmp_path, '[mapping]\ncategory = ["params.section", "categories[0]"]\ntype = ["extra.kind"]\ntags = ["taxonomies.tags"]\n')
    )
    r = record({"params": {"Section": "guides"}, "categories": ["a", "b"], "extra": {"kind": "page"}, "taxonomies": {"tags": ["x", "y"]}}, rules)
    assert (r.category, r.type, r.tags) == ("guides", "page", ["x", "y"])
    assert record({"categories": ["news", "other"]}, rules).category == "news"
    assert record({"categories": "news"}, rules).category == "news"  # index 0 of a single value is the value
    assert record({"categories": []}, rules).category is None


def test_a_header_with_a_dot_is_a_field_before_it_is_a_path(tmp_path):
    rules = load_rules(rules_file(tmp_path, '[mapping]\ntitle = ["meta.title"]\n'))
    assert record({"meta.title": "flat", "meta": {"title": "nested"}}, rules).title == "flat"
    assert record({"meta": {"title": "nested"}}, rules).title == "nested"


def test_templates_build_ids_and_urls_from_builtins_and_fields(tmp_path):
    rules = load_rules(
        rules_file(
            tmp_path,
            '[mapping]\nlegacy_id = ["id", "{slug}"]\nurl = ["permalink", "/{dir}/{stem}/"]\n[mapping.set]\ncategory = "{{literal}} {section}"\n',
        )
    )
    post = record({"title": "t", "section": "s"}, rules, path="_posts/2023-01-29-welcome.markdown", fmt="markdown")
    assert (post.legacy_id, post.url, post.category) == ("welcome", "/_posts/2023-01-29-welcome/", "{literal} s")
    assert record({"title": "t", "slug": "own-slug"}, rules, path="x/y.md").legacy_id == "own-slug"
    assert record({"id": 7, "title": "t"}, rules).legacy_id == "7"
    # a placeholder without a value leaves the template without one: the set value is not used
    assert record({"title": "t"}, rules).category is None


def test_the_default_legacy_id_is_path_and_index_and_any_mapping_ends_there(tmp_path):
    assert record({"title": "t"}, index=3).legacy_id == "a/b.json#3"
    rules = load_rules(rules_file(tmp_path, '[mapping]\nlegacy_id = ["{code}"]\n'))
    assert record({"title": "t"}, rules, index=2).legacy_id == "a/b.json#2"


def test_globs_give_files_their_own_mapping_and_constants(tmp_path):
    rules = load_rules(
        rules_file(
            tmp_path,
            '[[mapping.paths]]\nglob = "blog/**"\nset = { type = "post" }\ntitle = ["headline"]\n\n'
            '[[mapping.paths]]\nglob = ["*.csv", "exports/legacy/**"]\ndefault = { category = "export", tags = ["legacy", "csv"] }\n',
        )
    )
    post = record({"title": "T", "headline": "H", "type": "note"}, rules, path="blog/2020/x.md")
    assert (post.type, post.title) == ("post", "H")  # set outright, whatever the record says
    other = record({"title": "T", "type": "note"}, rules, path="wiki/x.md")
    assert (other.type, other.title) == ("note", "T")
    row = record({"title": "T"}, rules, path="deep/folder/table.csv")
    assert (row.category, row.tags) == ("export", ["legacy", "csv"])
    assert record({"title": "T", "category": "own"}, rules, path="exports/legacy/a.json").category == "own"  # a default only fills a gap


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("blog/**", ["blog/a.md", "blog/2020/b.md"], ["blogs/a.md", "x/blog/a.md"]),
        ("**/*.md", ["a.md", "x/y/z.md"], ["a.mdx"]),
        ("*.csv", ["t.csv", "exports/t.csv"], ["t.csv.bak"]),
        ("_posts/*.markdown", ["_posts/2023-01-01-a.markdown"], ["_posts/sub/a.markdown"]),
        ("docs/", ["docs/a.md", "docs/b/c.md"], ["docs.md"]),
        ("data/[!x]*.json", ["data/a.json"], ["data/xa.json"]),
    ],
)
def test_globs_match_relative_paths(glob, matches, misses):
    pattern = glob_pattern([glob])
    assert all(pattern.match(path) for path in matches)
    assert not any(pattern.match(path) for path in misses)


def test_every_original_field_stays_in_metadata_mapped_or_not(tmp_path):
    rules = load_rules(rules_file(tmp_path, '[mapping]\nurl = ["permalink"]\ncategory = ["categories[0]"]\n'))
    raw = {"title": "T", "permalink": "/p/", "categories": ["a", "b"], "aliases": ["/old/"], "weight": 3}
    r = record(raw, rules, fmt="markdown", path="p.md", body="text")
    assert (r.url, r.category, r.content) == ("/p/", "a", "text")
    assert r.metadata == raw


# ---- validation rules ----


def test_site_relative_urls_pass_by_default_and_the_absolute_policy_rejects_them(tmp_path):
    defaults = default_rules()
    urls = ["/commands/hugo/", "about/", "//cdn.example.com/x", "https://example.com/a", "#top"]
    assert verdicts(defaults, *({"title": "t", "url": u} for u in urls)) == {}
    bad = verdicts(defaults, {"title": "t", "url": "javascript:alert(1)"}, {"title": "t", "url": "two words"}, {"title": "t", "url": "mailto:a@b"})
    assert bad == {0: [("url.policy", "error")], 1: [("url.policy", "error")], 2: [("url.policy", "error")]}
    strict = load_rules(rules_file(tmp_path, '[validation.url]\npolicy = "absolute"\n'))
    assert verdicts(strict, {"title": "t", "url": "/commands/hugo/"}) == {0: [("url.policy", "error")]}
    loose = load_rules(rules_file(tmp_path, '[validation.url]\npolicy = "any"\n', "any.toml"))
    assert verdicts(loose, {"title": "t", "url": "javascript:alert(1)"}) == {}


def test_an_unparseable_date_is_a_warning_by_default_and_a_rejection_when_the_rules_say_so(tmp_path):
    raw = {"title": "t", "date": "2023-01-29 18:30:22 2023 -0800"}
    assert verdicts(default_rules(), raw) == {0: [("created_at.unparseable", "warn")]}
    strict = load_rules(rules_file(tmp_path, '[validation.created_at]\nunparseable = "reject"\n'))
    assert verdicts(strict, raw) == {0: [("created_at.unparseable", "error")]}


def test_dates_as_static_site_generators_write_them_parse():
    for written, stored in [
        ("2023-01-29 18:30:22 -0800", "2023-01-30T02:30:22Z"),
        ("2023-07-30T18:31:31-07:00", "2023-07-31T01:31:31Z"),
        ("Sun, 29 Jan 2023 18:30:22 -0800", "2023-01-30T02:30:22Z"),
        ("2023-01-29 10:00:00 UTC", "2023-01-29T10:00:00Z"),
        ("May 20, 2023", "2023-05-20"),
        ("2023/01/29", "2023-01-29"),
    ]:
        assert record({"title": "t", "date": written}).created_at == stored, written
    assert record({"title": "t", "date": "01/02/2023"}).created_at == "01/02/2023"  # ambiguous: never guessed, kept raw


def test_each_column_rule_kind_with_its_severity(tmp_path):
    rules = load_rules(
        rules_file(
            tmp_path,
            "[validation.title]\nrequired = true\nmax_length = 10\n"
            '[validation.category]\nallowed = ["docs", "blog"]\nseverity = "warn"\n'
            '[validation.legacy_id]\npattern = "^[a-z]+-[0-9]+$"\n'
            '[validation.tags]\nmax_length = { value = 5, severity = "warn" }\n'
            '[validation.content]\nrequired = { value = true, severity = "warn" }\n',
        )
    )
    found = verdicts(
        rules,
        {"id": "ok-1", "title": "fine", "category": "docs", "tags": ["a"], "content": "c"},
        {"id": "ok-2", "content": "c"},
        {"id": "ok-3", "title": "far too long a title", "content": "c"},
        {"id": "ok-4", "title": "t", "category": "misc", "content": "c"},
        {"id": "BAD", "title": "t", "content": "c"},
        {"id": "ok-6", "title": "t", "tags": ["toolong"], "content": "c"},
        {"id": "ok-7", "title": "t"},
    )
    assert found == {
        1: [("title.required", "error")],
        2: [("title.max_length", "error")],
        3: [("category.allowed", "warn")],
        4: [("legacy_id.pattern", "error")],
        5: [("tags.max_length", "warn")],
        6: [("content.required", "warn")],
    }


def test_record_rules_and_switching_a_default_rule_off(tmp_path):
    rules = load_rules(
        rules_file(
            tmp_path,
            '[validation.record]\nrequire_all = ["title", "url"]\nrequire_any = false\nseverity = "warn"\n[validation.title]\nmax_length = false\n',
        )
    )
    found = verdicts(rules, {"title": "x" * 5000, "url": "/a/"}, {"content": "only content"})
    assert found == {1: [("record.require_all", "warn")]}  # no title length limit, nothing required of any one column


def test_the_columns_width_is_always_an_error_even_when_a_rule_only_warns(tmp_path):
    rules = load_rules(rules_file(tmp_path, '[validation.type]\nmax_length = { value = 20, severity = "warn" }\n'))
    found = verdicts(rules, {"title": "t", "type": "x" * 30}, {"title": "t", "type": "y" * 150})
    assert found == {0: [("type.max_length", "warn")], 1: [("type.max_length", "warn"), ("type.width", "error")]}


def test_rules_files_in_yaml_mean_the_same_as_in_toml(tmp_path):
    toml = load_rules(rules_file(tmp_path, '[mapping]\nurl = ["permalink"]\n[validation.url]\npolicy = "absolute"\n'))
    yaml = load_rules(rules_file(tmp_path, "mapping:\n  url: [permalink]\nvalidation:\n  url: {policy: absolute}\n", "rules.yaml"))
    assert toml.hash == yaml.hash != default_rules().hash
    assert toml.mapping_hash != default_rules().mapping_hash and toml.validation_hash != default_rules().validation_hash


def test_the_rules_hash_ignores_comments_and_order_and_splits_mapping_from_validation(tmp_path):
    one = load_rules(rules_file(tmp_path, '# mine\n[validation.url]\npolicy = "absolute"\n[mapping]\nurl = ["permalink"]\n', "one.toml"))
    two = load_rules(rules_file(tmp_path, '[mapping]\nurl = ["permalink"]\n\n[validation.url]\npolicy = "absolute"  # strict\n', "two.toml"))
    assert one.hash == two.hash
    only_validation = load_rules(rules_file(tmp_path, '[validation.url]\npolicy = "absolute"\n', "three.toml"))
    assert only_validation.mapping_hash == default_rules().mapping_hash
    assert only_validation.validation_hash == one.validation_hash


# ---- a bad rules file ----


BAD_FILES = [
    ('[mapping]\ntitel = ["title"]\n', "mapping.titel: unknown column 'titel'"),
    ("[validation.titel]\nrequired = true\n", "validation.titel: unknown column 'titel'"),
    ('[validation.title]\npattern = "([a-z"\n', "validation.title.pattern: bad regular expression"),
    ('[validation.title]\nmax_length = "long"\n', "validation.title.max_length: expected a whole number"),
    ('[validation.url]\npolicy = "relative"\n', "validation.url.policy: unknown URL policy 'relative'"),
    ('[validation.created_at]\nunparseable = "ignore"\n', "validation.created_at.unparseable: unknown date policy 'ignore'"),
    ('[validation.title]\nseverity = "fatal"\n', "validation.title.severity: unknown severity 'fatal'"),
    ("[validation.title]\nminimum = 3\n", "validation.title.minimum: unknown rule for title"),
    ("[validation.category]\nmax_length = 300\n", "validation.category.max_length: 300 is more than the column holds (255 characters)"),
    ('[mapping]\nurl = "{unclosed"\n', "mapping.url[0]: template '{unclosed' has an unmatched '{'"),
    ("[mapping]\ntags = [1, 2]\n", "mapping.tags: expected a list of field names"),
    ('[[mapping.paths]]\nset = { type = "post" }\n', "mapping.paths[0].glob: missing"),
    ('[[mapping.paths]]\nglob = "blog/[x"\n', "mapping.paths[0].glob: glob 'blog/[x' has an unclosed '['"),
    ("[mapping.set]\ntitle = 3\n", "mapping.set.title: expected text"),
    ('[validation.record]\nrequire_any = ["title", "body"]\n', "validation.record.require_any: unknown column 'body'"),
    ("colums = 1\n", "colums: unknown key"),
    ("version = 2\n", "version: unsupported rules version 2"),
    ("[mapping\n", "is not valid TOML"),
]


@pytest.mark.parametrize(("text", "why"), BAD_FILES)
def test_a_bad_rules_file_is_refused_with_one_line_naming_the_key(tmp_path, text, why):
    with pytest.raises(RulesError) as refused:
        load_rules(rules_file(tmp_path, text))
    message = str(refused.value)
    assert why in message and "\n" not in message and str(tmp_path) in message


def test_a_missing_or_misnamed_rules_file_is_refused(tmp_path):
    with pytest.raises(RulesError, match="does not exist"):
        load_rules(tmp_path / "nope.toml")
    with pytest.raises(RulesError, match=r"expected a \.toml, \.yaml or \.yml file"):
        load_rules(rules_file(tmp_path, "x", "rules.ini"))
    with pytest.raises(RulesError, match="expected a table of settings"):
        load_rules(rules_file(tmp_path, "- a\n- b\n", "list.yaml"))


def test_the_readmes_example_rules_file_is_a_valid_rules_file(tmp_path):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("A full example, for a Hugo site", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    rules = load_rules(rules_file(tmp_path, example))
    assert rules.validation.get("title.max_length").severity == "warn"
    news = record({"title": "Hugo 0.120", "date": "2023-10-31"}, rules, path="content/news/0.120.md", fmt="markdown", body="Notes")
    assert (news.type, news.url, news.legacy_id) == ("release", "/news/0.120/", "content/news/0.120.md")
