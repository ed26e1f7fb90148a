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
    assert list(one.failures) == [("one.json", 1)] and "url" in one.failures[("one.json", 1)][0].message
    assert list(two.failures) == [("two.json", 0)] and "neither a title nor content" in two.failures[("two.json", 0)][0].message


def _square(x: int) -> int:
    return x * x


def test_the_workers_run_only_a_few_jobs_ahead_of_the_writer():
    from migration_assets.ingest import map_batches

    pulled = []

    def jobs():
        for i in range(50):
            pulled.append(i)
            yield (i,)

    results = map_batches(_square, jobs(), workers=2)
    assert next(results) == 0
    assert len(pulled) <= 4  # what waits to be written is bounded, whatever the corpus
    assert list(results) == [i * i for i in range(1, 50)]


def test_jobs_group_small_batches_but_keep_a_large_batch_alone(tmp_path):
    from migration_assets.config import MigrationConfig
    from migration_assets.ingest import BATCH_BYTES, parse_jobs
    from migration_assets.inventory import FileInventory

    files = [_file(f"s{i}", 1_000) for i in range(400)] + [_file(f"l{i}", BATCH_BYTES // 2) for i in range(4)]
    config = MigrationConfig(source_directory=str(tmp_path), backup_directory=str(tmp_path / "bk"), batch_size=10)
    total, jobs = parse_jobs(config, FileInventory(str(tmp_path), files))
    assert [n for job in jobs for n, _ in job] == list(range(total))  # every batch once, in order
    assert all(sum(f.size for _, batch in job for f in batch) <= BATCH_BYTES or len(job) == 1 for job in jobs)
    assert len(jobs[0]) > 1  # small batches share a job (and one schema call)


def test_the_collector_is_paced_for_bulk_work_and_restored_after_it_even_on_failure():
    import gc

    import pytest

    from migration_assets.memory import BULK_THRESHOLDS, bulk_allocation

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError), bulk_allocation():
        assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_freeze_count() > frozen  # what was alive is out of the scans
        raise RuntimeError("a failed batch")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
