"""Parsing and validation stages: source files → staged record batches → validation verdicts.

Both stages stream: parsed records go to batch files on disk (``staging``). The schema check
of a batch runs in the worker that parsed it, while its records are in memory, and its
verdicts go to a small file beside the batch; the validation stage reads only those verdict
files, applies the policy (``validate_data``) and catches duplicate ids across batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from migration_assets.config import MigrationConfig
from migration_assets.derivation import Derivation, DerivedRecords, derive
from migration_assets.inventory import FileInventory
from migration_assets.repeats import repeated_hashes
from migration_assets.sources.discovery import SourceFile
from migration_assets.sources.parse import ParsedFile, parse_file
from migration_assets.staging import StagedBatches, read_batch, staging_dir, write_batch, write_file
from migration_assets.store.loader import FileLoad
from migration_assets.validation import DUPLICATE_IN_BATCH, validate_records

R = TypeVar("R")
ParsedBatch = list[tuple[SourceFile, ParsedFile]]


def map_batches(fn: Callable[..., R], jobs: Iterable[tuple[Any, ...]], workers: int) -> Iterator[R]:
    """``fn(*job)`` for every job, in order; in a process pool when ``workers`` > 1."""
    if workers <= 1:
        for job in jobs:
            yield fn(*job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, *zip(*jobs, strict=True), chunksize=1)


BATCH_BYTES = 4 * 1024 * 1024
"""A batch also closes at this many bytes of source files, so that a run of large files (an
exports folder, say) does not make one batch, and the run's memory, many times the usual."""


def batched(files: list[SourceFile], size: int, max_bytes: int = BATCH_BYTES) -> list[list[SourceFile]]:
    """Consecutive batches of at most ``size`` files and ``max_bytes`` bytes (a larger file is a
    batch of its own)."""
    batches: list[list[SourceFile]] = []
    current: list[SourceFile] = []
    current_bytes = 0
    for source in files:
        if current and (len(current) >= size or current_bytes + source.size > max_bytes):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(source)
        current_bytes += source.size
    if current:
        batches.append(current)
    return batches


@dataclass
class BatchSummary:
    path: str
    files: int = 0
    records: int = 0
    rejected: int = 0
    failed_files: int = 0
    formats: Counter[str] = field(default_factory=Counter)


@dataclass
class BatchVerdicts:
    """The schema's verdicts on one staged batch: failures by (source path, record index), and
    every record's (legacy_id, source path, record index) in order."""

    failures: dict[tuple[str, int], list[str]]
    ids: list[tuple[str, str, int]]


def verdicts_path(batch_path: str | Path) -> Path:
    return Path(batch_path).with_suffix(".verdicts.pickle")


def derived_path(batch_path: str | Path) -> Path:
    return Path(batch_path).with_suffix(".derived.pickle")


BATCHES_PER_CHECK = 4
"""Batches a worker parses together and checks in one schema call: a Pandera call costs tens of
milliseconds whatever its size, which per 100-file batch was half the cost of parsing."""


def check_batches(batches: list[ParsedBatch]) -> list[BatchVerdicts]:
    """Validate the records of several batches in a single schema call; the verdicts per batch."""
    records = [record for batch in batches for _, parsed in batch for record in parsed.records]
    failures = validate_records(records)
    checked: list[BatchVerdicts] = []
    start = 0
    for batch in batches:
        end = start + sum(len(parsed.records) for _, parsed in batch)
        verdicts = {(records[i].source_path, records[i].record_index): failures[i] for i in range(start, end) if i in failures}
        checked.append(BatchVerdicts(verdicts, [(r.legacy_id, r.source_path, r.record_index) for r in records[start:end]]))
        start = end
    return checked


def parse_batches(root: str, directory: str, jobs: list[tuple[int, list[SourceFile]]], derivation: Derivation | None = None) -> list[BatchSummary]:
    """Parse a few consecutive batches of files, check them against the schema at once and stage
    each batch with its verdicts, and with its records' chunks and vectors when a ``derivation``
    is given; returns only the summaries (cheap to pass back)."""
    parsed_batches: list[ParsedBatch] = [[(source, parse_file(Path(root), source)) for source in sources] for _, sources in jobs]
    summaries = []
    for (batch_no, _), batch, verdicts in zip(jobs, parsed_batches, check_batches(parsed_batches), strict=True):
        path = write_batch(Path(directory), batch_no, batch)
        write_file(verdicts_path(path), verdicts)
        if derivation is not None:
            write_file(derived_path(path), derive([record for _, parsed in batch for record in parsed.records], derivation))
        summary = BatchSummary(str(path), files=len(batch))
        for _, parsed in batch:
            summary.records += len(parsed.records)
            summary.rejected += len(parsed.rejections)
            summary.failed_files += parsed.error is not None
            summary.formats[parsed.format] += len(parsed.records)
        summaries.append(summary)
    return summaries


def parse_stage(
    config: MigrationConfig,
    inventory: FileInventory,
    run_id: str,
    on_batch: Callable[[int, int], None] | None = None,
    derivation: Derivation | None = None,
) -> StagedBatches:
    """Parse every eligible file, ``config.batch_size`` files (at most ``BATCH_BYTES``) per staged
    batch; with a ``derivation``, also cut and embed the records while they are in memory."""
    directory = staging_dir(config.backup_path, run_id, "parsed_records")
    batches = batched(inventory.eligible, config.batch_size)
    staged = StagedBatches(str(directory))
    totals: Counter[str] = Counter()
    formats: Counter[str] = Counter()
    # a few batches per job, but enough jobs to keep every worker busy
    per_job = max(1, min(BATCHES_PER_CHECK, len(batches) // (4 * config.worker_processes)))
    numbered = list(enumerate(batches))
    if derivation is not None and config.worker_processes > 1:
        derivation = derivation.sendable()
    jobs = [(inventory.root, str(directory), numbered[i : i + per_job], derivation) for i in range(0, len(numbered), per_job)]
    n = 0
    for summaries in map_batches(parse_batches, jobs, config.worker_processes):
        for summary in summaries:
            n += 1
            staged.files.append(summary.path)
            totals.update(files=summary.files, records=summary.records, parse_rejected=summary.rejected, failed_files=summary.failed_files)
            formats.update(summary.formats)
            if on_batch:
                on_batch(n, len(batches))
    staged.counts = {
        **{k: totals.get(k, 0) for k in ("files", "records", "parse_rejected", "failed_files")},
        **{f"records_{k}": v for k, v in sorted(formats.items())},
    }
    return staged


@dataclass
class ValidatedRecords:
    """Parsed batches plus validation's verdicts; iterating yields ready-to-load files per batch."""

    parsed: StagedBatches
    invalid: dict[int, dict[tuple[str, int], list[str]]] = field(default_factory=dict)  # batch → (path, index) → reasons
    warnings: dict[int, dict[tuple[str, int], list[str]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def batches(self) -> Iterator[list[FileLoad]]:
        for batch_no, path in enumerate(self.parsed.files):
            yield self._files(batch_no, path)

    def batches_with_derived(self) -> Iterator[tuple[list[FileLoad], DerivedRecords | None]]:
        """Each batch's files, with the chunks and vectors its parse derived (None if it did not)."""
        for batch_no, path in enumerate(self.parsed.files):
            derived: DerivedRecords | None = read_batch(derived_path(path)) if derived_path(path).exists() else None
            yield self._files(batch_no, path), derived

    def _files(self, batch_no: int, path: str) -> list[FileLoad]:
        batch: ParsedBatch = read_batch(path)
        invalid = _by_file(self.invalid.get(batch_no, {}))
        warnings = _by_file(self.warnings.get(batch_no, {}))
        return [FileLoad(source, parsed, invalid.get(source.rel_path, {}), warnings.get(source.rel_path, {})) for source, parsed in batch]


def _by_file(verdicts: dict[tuple[str, int], list[str]]) -> dict[str, dict[int, list[str]]]:
    by_file: dict[str, dict[int, list[str]]] = {}
    for (rel, index), reasons in verdicts.items():
        by_file.setdefault(rel, {})[index] = reasons
    return by_file


def repeated_id_hashes(parsed: StagedBatches) -> set[int]:
    """The hashes of legacy ids that occur more than once across the batches (a hash collision
    only adds a candidate). Eight bytes a record, so memory stays flat as the corpus grows."""
    return repeated_hashes(legacy_id for path in parsed.files for legacy_id, _, _ in batch_verdicts(path).ids)


def batch_verdicts(path: str) -> BatchVerdicts:
    """The verdicts ``parse_batches`` staged beside a parsed batch."""
    verdicts: BatchVerdicts = read_batch(verdicts_path(path))
    return verdicts


# Failures that no setting lets through: the target cannot hold two records under one id.
BLOCKING_ALWAYS = ("duplicate legacy_id",)


def validate_stage(config: MigrationConfig, parsed: StagedBatches) -> ValidatedRecords:
    """Apply the schema's verdicts on every staged batch (``validate_data`` decides whether a
    failure blocks the record or is only a warning); duplicate legacy ids across batches are
    caught here."""
    result = ValidatedRecords(parsed)
    repeated = repeated_id_hashes(parsed)
    first_seen: dict[str, str] = {}  # only ids that occur more than once: small, whatever the corpus
    valid = invalid = warned = 0
    for batch_no, path in enumerate(parsed.files):
        checked = batch_verdicts(path)
        verdicts, ids = checked.failures, checked.ids
        for legacy_id, rel, index in ids:
            # the first valid record with an id wins; later ones name it (the schema's own
            # uniqueness check only sees one batch)
            key = (rel, index)
            reasons = [r for r in verdicts.pop(key, []) if r != DUPLICATE_IN_BATCH]
            if hash(legacy_id) in repeated:  # else its only occurrence
                if legacy_id in first_seen:
                    reasons.insert(0, f"duplicate legacy_id {legacy_id!r}: first seen in {first_seen[legacy_id]}")
                elif not reasons or not config.validate_data:
                    first_seen[legacy_id] = rel
            if reasons:
                verdicts[key] = reasons
        blocking: dict[tuple[str, int], list[str]] = {}
        for key, reasons in verdicts.items():
            if config.validate_data or any(r.startswith(BLOCKING_ALWAYS) for r in reasons):
                blocking[key] = reasons
            else:
                result.warnings.setdefault(batch_no, {})[key] = reasons
                warned += 1
        if blocking:
            result.invalid[batch_no] = blocking
        invalid += len(blocking)
        valid += len(ids) - len(blocking)
    result.counts = {"valid": valid, "invalid": invalid, "warnings": warned}
    return result
