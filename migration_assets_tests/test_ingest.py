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
