import json

import pytest

from migration_assets.records import LegacyRecord
from migration_assets.sources.csv_files import parse_csv
from migration_assets.sources.errors import FileRejected
from migration_assets.sources.json_files import parse_json, parse_jsonl
from migration_assets.sources.markdown import parse_markdown
from migration_assets.sources.text import parse_text


def test_json_object_is_one_record():
    records, rejected = parse_json(json.dumps({"id": "x1", "title": "T", "content": "C", "tags": ["a"]}), "a.json")
    assert [r.legacy_id for r in records] == ["x1"] and not rejected
    assert records[0].source_format == "json"


def test_json_array_is_one_record_per_element_and_bad_elements_are_rejected_alone():
    records, rejected = parse_json(json.dumps([{"title": "a"}, 5, {"title": "b"}]), "e.json")
    assert [r.title for r in records] == ["a", "b"]
    assert [(r.record_index, r.reason) for r in rejected] == [(1, "expected a JSON object, got int")]
    assert records[1].legacy_id == "e.json#2"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"title": "trunc', "malformed JSON"),
        ("42", "top-level JSON value is int"),
        ("", "empty file"),
        ("[]", "empty JSON array"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_broken_json_file_is_rejected_with_reason(text, reason):
    with pytest.raises(FileRejected, match=reason):
        parse_json(text, "bad.json")


def test_jsonl_bad_line_is_rejected_and_the_rest_go_on():
    text = '{"id": 1, "title": "a"}\n\n{broken\n{"id": 2, "title": "b"}\n'
    records, rejected = parse_jsonl(text, "x.jsonl")
    assert [r.legacy_id for r in records] == ["1", "2"]
    assert len(rejected) == 1 and rejected[0].record_index == 3 and "line 3" in rejected[0].reason


def test_markdown_frontmatter_fields_and_body():
    text = "---\ntitle: Hello\nurl: https://e.com/h\ntags: [a, b]\ndate: 2020-01-02\nauthor: Ann\n---\n\n# Heading\n\nBody text.\n"
    (record,), rejected = parse_markdown(text, "blog/hello.md")
    assert not rejected
    assert (record.title, record.url, record.tags, record.created_at) == ("Hello", "https://e.com/h", ["a", "b"], "2020-01-02")
    assert record.content.startswith("# Heading")
    assert record.metadata == {"title": "Hello", "url": "https://e.com/h", "tags": ["a", "b"], "date": "2020-01-02", "author": "Ann"}


def test_markdown_without_frontmatter_takes_the_first_heading_then_the_file_name():
    (with_heading,), _ = parse_markdown("Intro\n\n# The Title\n\ntext", "x/page.md")
    (without,), _ = parse_markdown("just words", "x/page-name.md")
    assert with_heading.title == "The Title"
    assert without.title == "page-name"


def test_markdown_with_crlf_and_bom_decoded_text():
    (record,), _ = parse_markdown("---\r\ntitle: Win\r\n---\r\nbody\r\n", "w.md")
    assert record.title == "Win" and record.content == "body"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("---\ntitle: [unclosed\ntags: {a: \n---\n\nbody", "invalid YAML frontmatter"),
        ("---\n- a\n- b\n---\nbody", "frontmatter is a list"),
        ("   \n", "empty file"),
    ],
)
def test_broken_markdown_is_rejected_with_reason(text, reason):
    with pytest.raises(FileRejected, match=reason):
        parse_markdown(text, "bad.md")


def test_unsafe_yaml_tags_are_not_executed():
    with pytest.raises(FileRejected, match="YAML tag .*python/object/apply:os.system.* never loaded"):
        parse_markdown("---\ntitle: !!python/object/apply:os.system ['echo hacked']\n---\nbody", "evil.md")


def test_text_file_name_is_the_title():
    (record,), _ = parse_text("Some plain text.\nMore.", "notes/meeting_notes.txt")
    assert record.title == "meeting_notes" and record.content == "Some plain text.\nMore."


def test_empty_text_is_rejected():
    with pytest.raises(FileRejected, match="empty file"):
        parse_text(" \n\t", "empty.txt")


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_with_sniffed_delimiter_maps_headers_and_splits_tags(delimiter):
    d = delimiter
    text = f'id{d}Title{d}content{d}tags{d}extra\r\n1{d}A{d}"multi\nline{d} text"{d}x|y{d}kept\r\n2{d}B{d}b{d}"p,q"{d}\r\n'
    records, rejected = parse_csv(text, "t.csv")
    assert not rejected
    assert [(r.legacy_id, r.title, r.tags) for r in records] == [("1", "A", ["x", "y"]), ("2", "B", ["p", "q"])]
    assert records[0].content == f"multi\nline{d} text" and records[0].metadata == {"id": "1", "Title": "A", "tags": "x|y", "extra": "kept"}


def test_csv_ragged_row_is_rejected_alone():
    records, rejected = parse_csv("id,title\n1,a\n2,b,surplus\n3,c\n", "r.csv")
    assert [r.legacy_id for r in records] == ["1", "3"]
    assert len(rejected) == 1 and "has 3 fields, the header has 2" in rejected[0].reason


def test_csv_header_only_is_rejected():
    with pytest.raises(FileRejected, match="no rows"):
        parse_csv("id,title\n", "h.csv")


def test_every_parser_returns_legacy_records():
    records, _ = parse_text("x", "a.txt")
    assert all(isinstance(r, LegacyRecord) for r in records)


def test_json_with_an_integer_beyond_python_limits_is_rejected_not_crashed():
    with pytest.raises(FileRejected, match="malformed JSON"):
        parse_json('{"id": ' + "9" * 5000 + "}", "huge.json")


def test_markdown_body_stays_the_content_when_frontmatter_has_a_description():
    (record,), _ = parse_markdown("---\ntitle: T\ndescription: A short summary\ncontent: also here\n---\nThe real body.", "d.md")
    assert record.content == "The real body."
    assert record.metadata == {"title": "T", "description": "A short summary", "content": "also here"}


def test_csv_cells_under_empty_or_repeated_headers_are_kept():
    (record,), _ = parse_csv("id,title,,title\n1,first,IMPORTANT,second\n", "h.csv")
    assert record.title == "first" and record.metadata == {"id": "1", "title": "first", "column_3": "IMPORTANT", "title_4": "second"}


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("id;title;content", ";"), ("id,title,content", ","), ('"a;b",c', ","), ('"a,b";c;d', ";"), ("title", ",")],
)
def test_csv_delimiter_is_whichever_splits_the_header_into_more_columns(header, delimiter):
    rows = {",": "1,T,C", ";": "1;T;C"}
    records, rejected = parse_csv(f"{header}\n{rows[delimiter]}\n", "d.csv")
    assert records or rejected  # the file is read with the chosen delimiter
    from migration_assets.sources.csv_files import sniff_delimiter

    assert sniff_delimiter(header) == delimiter


def test_nul_characters_and_escaped_surrogates_are_cleaned_wherever_they_appear_in_a_file():
    # the parsers skip cleaning field by field when the whole text is clean: a NUL far into the
    # file, or a JSON escape that decodes to one, must still be caught
    filler = "x" * 10_000
    records, _ = parse_csv(f"id,title,content\n1,{filler},ok\n2,T\x00,C\x00D\n", "n.csv")
    assert [(r.title, r.content) for r in records][1] == ("T", "CD")
    records, _ = parse_json(json.dumps([{"title": filler}, {"title": "a\x00b", "content": "lone \ud800 surrogate", "tags": ["t\x00"]}]), "n.json")
    assert (records[1].title, records[1].content, records[1].tags) == ("ab", "lone ? surrogate", ["t"])
    records, _ = parse_jsonl('{"title": "j\\u0000k", "metadata": {"k\\u0000": "v\\udc00"}}\n', "n.jsonl")
    assert records[0].title == "jk" and records[0].metadata == {"title": "jk", "k": "v?"}
    records, _ = parse_text(f"{filler}\x00tail", "n.txt")
    assert records[0].content == filler + "tail"
