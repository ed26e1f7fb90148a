"""How parsing splits the work: batches bounded by files and by bytes."""

from migration_assets.ingest import batched
from migration_assets.sources.discovery import FileStatus, SourceFile


def _file(name: str, size: int) -> SourceFile:
    return SourceFile(name, "json", size, 0.0, None, FileStatus.ELIGIBLE)


def test_batches_close_at_the_file_count_or_the_byte_cap_and_keep_every_file_in_order():
    files = [_file(f"f{i}", size) for i, size in enumerate([10, 10, 10, 500, 10, 10, 2000, 10])]
    batches = batched(files, 3, max_bytes=600)
    assert [[f.rel_path for f in b] for b in batches] == [["f0", "f1", "f2"], ["f3", "f4", "f5"], ["f6"], ["f7"]]
    assert [f for b in batches for f in b] == files


def test_a_file_larger_than_the_cap_is_a_batch_of_its_own():
    files = [_file("small", 1), _file("huge", 10_000), _file("small2", 1)]
    assert [len(b) for b in batched(files, 100, max_bytes=100)] == [1, 1, 1]


def test_batches_checked_together_get_each_its_own_verdicts():
    from migration_assets.ingest import check_batches
    from migration_assets.records import normalise_record
    from migration_assets.sources.parse import ParsedFile

    def batch(path: str, records: list[dict]) -> list:
        parsed = ParsedFile(
            path, "json", records=[normalise_record(r, source_path=path, source_format="json", record_index=i) for i, r in enumerate(records)]
        )
        return [(_file(path, 1), parsed)]

    good = {"id": "a", "title": "A", "content": "text"}
    first = batch("one.json", [good, {"id": "b", "title": "B", "content": "x", "url": "not a url"}])
    second = batch("two.json", [{"id": "c", "title": "", "content": ""}, {"id": "d", "title": "D", "content": "y"}])
    one, two = check_batches([first, second])
    assert [i[0] for i in one.ids] == ["a", "b"] and [i[0] for i in two.ids] == ["c", "d"]
    assert list(one.failures) == [("one.json", 1)] and "url" in one.failures[("one.json", 1)][0]
    assert list(two.failures) == [("two.json", 0)] and "neither a title nor content" in two.failures[("two.json", 0)][0]
