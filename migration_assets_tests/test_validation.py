from migration_assets.records import normalise_record
from migration_assets.validation import validate_records


def records(*raws):
    return [normalise_record(r, source_path="v.json", source_format="json", record_index=i) for i, r in enumerate(raws)]


def test_valid_records_pass():
    assert validate_records(records({"id": 1, "title": "a", "url": "https://e.com", "created_at": "2020-01-01"})) == {}


def test_every_failing_record_is_named_with_all_its_reasons():
    failures = validate_records(
        records(
            {"id": 1, "title": "ok"},
            {"id": 2},
            {"id": 3, "title": "t", "url": "javascript:alert(1)", "created_at": "someday"},
            {"id": 1, "title": "again"},
        )
    )
    assert set(failures) == {1, 2, 3}
    assert failures[1] == ["record has neither a title nor content"]
    assert sorted(failures[2]) == ["created_at is not a parseable date", "url is not an http(s) or ftp URL"]
    assert failures[3] == ["duplicate legacy_id within the batch"]


def test_overlong_title_is_rejected():
    failures = validate_records(records({"id": 1, "title": "x" * 3000}))
    assert "title is longer than 2000 characters" in failures[0]


def test_a_value_of_the_wrong_type_fails_its_own_record_only():
    # text columns are checked by dtype when they hold only text; a value that is not text
    # (a parser bug, say) sends the batch through the value-by-value check instead
    batch = records({"id": 1, "title": "a"}, {"id": 2, "title": "b", "url": "nope"}, {"id": 3, "title": "c"})
    batch[2] = batch[2]._replace(title=42)
    failures = validate_records(batch)
    assert set(failures) == {1, 2}
    assert failures[1] == ["url is not an http(s) or ftp URL"]
    assert "title: wrong type or missing (42)" in failures[2]
