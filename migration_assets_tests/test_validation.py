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
