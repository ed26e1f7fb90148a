from migration_assets.records import normalise_record
from migration_assets.validation import validate_records


def records(*raws):
    return [normalise_record(r, source_path="v.json", source_format="json", record_index=i) for i, r in enumerate(raws)]


def messages(failures):
    return {position: [v.message for v in found] for position, found in failures.items()}


def test_valid_records_pass():
    assert validate_records(records({"id": 1, "title": "a", "url": "https://e.com", "created_at": "2020-01-01"})) == {}


def test_every_failing_record_is_named_with_all_its_reasons_and_rules():
    failures = validate_records(
        records(
            {"id": 1, "title": "ok"},
            {"id": 2},
            {"id": 3, "title": "t", "url": "javascript:alert(1)", "created_at": "someday"},
            {"id": 1, "title": "again"},
        )
    )
    assert set(failures) == {1, 2, 3}
    assert messages(failures)[1] == ["record has neither a title nor content"]
    assert sorted(messages(failures)[2]) == [
        "created_at is not a parseable date (left empty, the raw value kept in metadata): got 'someday'",
        "url is neither an http(s)/ftp URL nor a site-relative path: got 'javascript:alert(1)'",
    ]
    assert {(v.rule, v.severity) for v in failures[2]} == {("url.policy", "error"), ("created_at.unparseable", "warn")}
    assert messages(failures)[3] == ["duplicate legacy_id within the batch"]


def test_overlong_title_is_rejected():
    failures = validate_records(records({"id": 1, "title": "x" * 3000}))
    assert failures[0][0].rule == "title.max_length" and failures[0][0].message.startswith("title is longer than 2000 characters")


def test_a_value_of_the_wrong_type_fails_its_own_record_only():
    # text columns are checked by dtype when they hold only text; a value that is not text
    # (a parser bug, say) sends the batch through the value-by-value check instead
    batch = records({"id": 1, "title": "a"}, {"id": 2, "title": "b", "url": "not a url"}, {"id": 3, "title": "c"})
    batch[2] = batch[2]._replace(title=42)
    failures = messages(validate_records(batch))
    assert set(failures) == {1, 2}
    assert failures[1] == ["url is neither an http(s)/ftp URL nor a site-relative path: got 'not a url'"]
    assert "title: wrong type or missing (42)" in failures[2]
