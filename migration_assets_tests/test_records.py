import datetime as dt

from migration_assets.records import LegacyRecord, RecordRejection, normalise_date, normalise_record, normalise_tags


def norm(raw, **kw):
    return normalise_record(raw, source_path=kw.pop("path", "a/b.json"), source_format="json", record_index=kw.pop("index", 0), **kw)


def test_int_and_string_ids_become_strings():
    assert norm({"id": 42, "title": "t"}).legacy_id == "42"
    assert norm({"id": " legacy-7 ", "title": "t"}).legacy_id == "legacy-7"


def test_missing_id_is_derived_from_path_and_index_stably():
    first = norm({"title": "t"}, index=3)
    again = norm({"title": "other"}, index=3)
    assert first.legacy_id == again.legacy_id == "a/b.json#3"


def test_tags_as_list_comma_string_or_pipe_string():
    assert normalise_tags(["a", " b ", "a", ""]) == ["a", "b"]
    assert normalise_tags("x, y,z") == ["x", "y", "z"]
    assert normalise_tags("x|y, z") == ["x", "y, z"]
    assert normalise_tags(None) == []


def test_dates_become_iso_strings():
    assert normalise_date("2024-01-01T10:00:00Z") == "2024-01-01T10:00:00Z"
    assert normalise_date("2024-01-01T12:00:00+02:00") == "2024-01-01T10:00:00Z"
    assert normalise_date(dt.date(2020, 5, 17)) == "2020-05-17"
    assert normalise_date("2020-05-17") == "2020-05-17"
    assert normalise_date(0) == "1970-01-01T00:00:00Z"
    assert normalise_date("last tuesday") == "last tuesday"  # kept raw; validation rejects it


def test_every_field_is_kept_in_metadata_mapped_or_not_and_a_metadata_object_is_merged_in():
    record = norm({"title": "t", "author": "Ann", "metadata": {"source": "blog", "author": "Bob"}})
    assert record.metadata == {"title": "t", "author": "Ann", "source": "blog", "legacy:author": "Bob"}


def test_the_field_that_became_the_content_is_not_kept_twice():
    record = norm({"title": "t", "body": "long text", "url": "https://x"})
    assert record.content == "long text" and record.metadata == {"title": "t", "url": "https://x"}


def test_aliases_map_to_the_unified_fields():
    record = norm({"name": "T", "body": "B", "link": "https://x", "labels": "a,b", "date": "2021-02-03"})
    assert (record.title, record.content, record.url, record.tags, record.created_at) == ("T", "B", "https://x", ["a", "b"], "2021-02-03")


def test_nul_characters_are_removed():
    assert norm({"title": "a\x00b", "content": "c\x00"}).title == "ab"


def test_a_dict_where_text_belongs_is_rejected_with_reason():
    result = norm({"id": 1, "title": {"nested": True}})
    assert isinstance(result, RecordRejection)
    assert "wrong field type" in result.reason and result.legacy_id == "1"


def test_hashes_change_with_content_and_not_otherwise():
    a, b, c = norm({"title": "t", "content": "x"}), norm({"title": "t", "content": "x"}), norm({"title": "t", "content": "y"})
    assert isinstance(a, LegacyRecord)
    assert a.record_hash == b.record_hash != c.record_hash
    assert a.content_hash != c.content_hash


def test_an_unusable_id_is_kept_in_metadata_and_the_record_gets_a_derived_one():
    record = norm({"id": 12.5, "title": "t"}, index=4)
    assert record.legacy_id == "a/b.json#4" and record.metadata == {"id": 12.5, "title": "t"}
    assert norm({"id": {"nested": 1}, "uuid": "u-1", "title": "t"}).legacy_id == "u-1"  # the next source with a usable id


def test_a_date_with_no_utc_equivalent_does_not_crash():
    record = norm({"title": "t", "created_at": "0001-01-01T00:00:00+05:00"})
    assert isinstance(record, LegacyRecord) and record.created_at.startswith("0001-01-01")


def test_a_single_value_in_a_text_column_is_taken_as_its_text_and_a_list_in_a_one_value_column_gives_its_first():
    import datetime as dt

    record = norm({"title": dt.date(2023, 1, 1), "content": True, "category": ["news", "other"], "url": ["/a/", "/b/"]})
    assert (record.title, record.content, record.category, record.url) == ("2023-01-01", "true", "news", "/a/")
    assert record.metadata["category"] == ["news", "other"]  # the whole list is kept
    assert isinstance(norm({"title": ["a", "b"]}), RecordRejection)  # a title is one text
