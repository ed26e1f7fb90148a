"""Parsing and validation: source files → batches of records checked against the schema.

Workers parse a few batches of files at a time, check their records in one schema call while
they are in memory, and cut and embed them (``derivation``). The migration's own pass,
``prepared_batches``, hands each prepared batch to the writer as it comes, a few jobs ahead and
no more, so that parsing and writing overlap and memory stays flat; ``batch_policy`` applies
``validate_data`` to a batch's verdicts. A plan that writes nothing (a dry run, a validation
report) stages the batches on disk instead (``parse_stage``) and applies the policy across all
of them (``validate_stage``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, TypeVar

from migration_assets.config import MigrationConfig
from migration_assets.derivation import Derivation, DerivedRecords, derive
from migration_assets.embeddings.base import for_workers
from migration_assets.inventory import FileInventory
from migration_assets.memory import pace_collector, peak_rss_mb
from migration_assets.repeats import repeated_hashes
from migration_assets.rules import MigrationRules, default_rules
from migration_assets.sources.discovery import SourceFile
from migration_assets.sources.parse import ParsedFile, parse_file
from migration_assets.staging import StagedBatches, read_batch, staging_dir, write_batch, write_file
from migration_assets.store.loader import FileLoad
from migration_assets.validation import DUPLICATE_ID, UNIQUE_RULE, Violation, blocks, validate_records

R = TypeVar("R")
ParsedBatch = list[tuple[SourceFile, ParsedFile]]


def map_batches(fn: Callable[..., R], jobs: Iterable[tuple[Any, ...]], workers: int, context: BaseContext | None = None) -> Iterator[R]:
    """``fn(*job)`` for every job, in order; in a process pool when ``workers`` > 1 (started in
    ``context``, None: fork), a few jobs ahead of the consumer and no more (results waiting to be
    consumed are held in memory)."""
    if workers <= 1:
        for job in jobs:
            yield fn(*job)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=pace_collector) as pool:
        pending: deque[Future[R]] = deque()
        for job in jobs:
            pending.append(pool.submit(fn, *job))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


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


Verdicts = dict[tuple[str, int], list[Violation]]
"""The rules records break, by (source path, record index)."""


@dataclass
class BatchVerdicts:
    """The schema's verdicts on one staged batch: the rules each record breaks, by (source path,
    record index), and every record's (legacy_id, source path, record index) in order."""

    failures: dict[tuple[str, int], list[Violation]]
    ids: list[tuple[str, str, int]]


def verdicts_path(batch_path: str | Path) -> Path:
    return Path(batch_path).with_suffix(".verdicts.pickle")


BATCHES_PER_CHECK = 4
"""Batches a worker parses together and checks in one schema call: a Pandera call costs tens of
milliseconds whatever its size, which per 100-file batch was half the cost of parsing."""


def check_batches(batches: list[ParsedBatch], rules: MigrationRules | None = None) -> list[BatchVerdicts]:
    """Validate the records of several batches in a single schema call of the ``rules``' schema
    (the built-in rules when None); the verdicts per batch."""
    records = [record for batch in batches for _, parsed in batch for record in parsed.records]
    failures = validate_records(records, (rules or default_rules()).validation)
    checked: list[BatchVerdicts] = []
    start = 0
    for batch in batches:
        end = start + sum(len(parsed.records) for _, parsed in batch)
        verdicts = {(records[i].source_path, records[i].record_index): failures[i] for i in range(start, end) if i in failures}
        checked.append(BatchVerdicts(verdicts, [(r.legacy_id, r.source_path, r.record_index) for r in records[start:end]]))
        start = end
    return checked


@dataclass
class PreparedBatch:
    """One batch as a worker hands it over: its files parsed, the schema's verdicts on their
    records, and the chunks and vectors derived from them (None without a derivation)."""

    files: ParsedBatch
    verdicts: BatchVerdicts
    derived: DerivedRecords | None
    peak_rss_mb: float = 0.0  # of the process that prepared it, so far

    def summary(self, path: str = "") -> BatchSummary:
        summary = BatchSummary(path, files=len(self.files))
        for _, parsed in self.files:
            summary.records += len(parsed.records)
            summary.rejected += len(parsed.rejections)
            summary.failed_files += parsed.error is not None
            summary.formats[parsed.format] += len(parsed.records)
        return summary


def prepare_batches(
    root: str, jobs: list[tuple[int, list[SourceFile]]], rules: MigrationRules, derivation: Derivation | None = None
) -> list[PreparedBatch]:
    """Parse a few consecutive batches of files (fields mapped as ``rules`` say), check their
    records against the rules' schema in one call, and cut and embed them when a ``derivation``
    is given."""
    parsed_batches: list[ParsedBatch] = [[(source, parse_file(Path(root), source, rules)) for source in sources] for _, sources in jobs]
    prepared = [
        PreparedBatch(batch, verdicts, derive([r for _, parsed in batch for r in parsed.records], derivation) if derivation else None)
        for batch, verdicts in zip(parsed_batches, check_batches(parsed_batches, rules), strict=True)
    ]
    peak = peak_rss_mb()
    for batch in prepared:
        batch.peak_rss_mb = peak
    return prepared


def parse_batches(root: str, directory: str, jobs: list[tuple[int, list[SourceFile]]], rules: MigrationRules) -> list[BatchSummary]:
    """``prepare_batches``, each batch staged on disk with its verdicts (for a plan: a dry run or
    a validation report); returns only the summaries (cheap to pass back)."""
    summaries = []
    for (batch_no, _), prepared in zip(jobs, prepare_batches(root, jobs, rules), strict=True):
        path = write_batch(Path(directory), batch_no, prepared.files)
        write_file(verdicts_path(path), prepared.verdicts)
        summaries.append(prepared.summary(str(path)))
    return summaries


def parse_jobs(config: MigrationConfig, inventory: FileInventory) -> tuple[int, list[list[tuple[int, list[SourceFile]]]]]:
    """The eligible files in batches (``config.batch_size`` files, at most ``BATCH_BYTES``), and
    the batches grouped into jobs for the workers: up to ``BATCHES_PER_CHECK`` consecutive
    batches and ``BATCH_BYTES`` of files a job (so a job of large files stays one batch, and the
    jobs waiting to be written stay small), but enough jobs to keep every worker busy; (batches, jobs)."""
    batches = batched(inventory.eligible, config.batch_size)
    per_job = max(1, min(BATCHES_PER_CHECK, len(batches) // (4 * config.worker_processes)))
    jobs: list[list[tuple[int, list[SourceFile]]]] = []
    job_bytes = 0
    for numbered in enumerate(batches):
        size = sum(source.size for source in numbered[1])
        if not jobs or len(jobs[-1]) >= per_job or job_bytes + size > BATCH_BYTES:
            jobs.append([])
            job_bytes = 0
        jobs[-1].append(numbered)
        job_bytes += size
    return len(batches), jobs


def prepared_batches(
    config: MigrationConfig,
    inventory: FileInventory,
    jobs: list[list[tuple[int, list[SourceFile]]]],
    rules: MigrationRules,
    derivation: Derivation | None = None,
) -> Iterator[PreparedBatch]:
    """The batches of ``jobs`` (``parse_jobs``) parsed, checked (and derived), in order, as the
    workers finish them: the caller writes one batch while the workers prepare the next ones."""
    context = None
    if derivation is not None and config.worker_processes > 1:
        provider, context = for_workers(derivation.sendable().provider, config.worker_processes)
        derivation = dataclasses.replace(derivation, provider=provider)
    for prepared in map_batches(prepare_batches, [(inventory.root, job, rules, derivation) for job in jobs], config.worker_processes, context):
        yield from prepared


def parse_stage(
    config: MigrationConfig, inventory: FileInventory, run_id: str, rules: MigrationRules, on_batch: Callable[[int, int], None] | None = None
) -> StagedBatches:
    """Parse and check every eligible file under ``rules``, staged on disk batch by batch
    (``parse_jobs``), for a plan that writes nothing (``ingest_stage`` is the migration's own pass)."""
    directory = staging_dir(config.backup_path, run_id, "parsed_records")
    staged = StagedBatches(str(directory))
    tally = ParseTally()
    total, jobs = parse_jobs(config, inventory)
    for summaries in map_batches(parse_batches, [(inventory.root, str(directory), job, rules) for job in jobs], config.worker_processes):
        for summary in summaries:
            staged.files.append(summary.path)
            tally.add(summary)
            if on_batch:
                on_batch(len(staged.files), total)
    staged.counts = tally.counts()
    return staged


@dataclass
class ParseTally:
    """What the parse of many batches found: files, records, rejections and formats."""

    totals: Counter[str] = field(default_factory=Counter)
    formats: Counter[str] = field(default_factory=Counter)

    def add(self, summary: BatchSummary) -> None:
        self.totals.update(files=summary.files, records=summary.records, parse_rejected=summary.rejected, failed_files=summary.failed_files)
        self.formats.update(summary.formats)

    def counts(self) -> dict[str, int]:
        return {
            **{k: self.totals.get(k, 0) for k in ("files", "records", "parse_rejected", "failed_files")},
            **{f"records_{k}": v for k, v in sorted(self.formats.items())},
        }


@dataclass
class ValidatedRecords:
    """Parsed batches plus validation's verdicts; iterating yields ready-to-load files per batch."""

    parsed: StagedBatches
    invalid: dict[int, Verdicts] = field(default_factory=dict)  # batch → (path, index) → the rules it breaks
    warnings: dict[int, Verdicts] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def batches(self) -> Iterator[list[FileLoad]]:
        for batch_no, path in enumerate(self.parsed.files):
            yield file_loads(read_batch(path), self.invalid.get(batch_no, {}), self.warnings.get(batch_no, {}))


def file_loads(batch: ParsedBatch, invalid: Verdicts, warnings: Verdicts) -> list[FileLoad]:
    """A parsed batch with its verdicts, file by file, ready to write."""
    invalid_by_file = _by_file(invalid)
    warnings_by_file = _by_file(warnings)
    return [FileLoad(source, parsed, invalid_by_file.get(source.rel_path, {}), warnings_by_file.get(source.rel_path, {})) for source, parsed in batch]


def _by_file(verdicts: Verdicts) -> dict[str, dict[int, list[Violation]]]:
    by_file: dict[str, dict[int, list[Violation]]] = {}
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
        blocking, warnings = apply_verdicts(config, checked, repeated, first_seen)
        if blocking:
            result.invalid[batch_no] = blocking
        if warnings:
            result.warnings[batch_no] = warnings
        invalid += len(blocking)
        warned += len(warnings)
        valid += len(checked.ids) - len(blocking)
    result.counts = {"valid": valid, "invalid": invalid, "warnings": warned}
    return result


def apply_verdicts(config: MigrationConfig, checked: BatchVerdicts, repeated: set[int], first_seen: dict[str, str]) -> tuple[Verdicts, Verdicts]:
    """One batch's verdicts under the policy: (blocking, warnings), each the rules a record breaks.
    A record is blocked by a rule of severity ``error`` (unless ``validate_data`` is off, which
    makes every rule a warning) and always by a duplicate legacy id: a legacy id whose hash is in
    ``repeated`` is kept in ``first_seen`` (id → path) and any later record with it is refused,
    across the batches that share ``first_seen``."""
    verdicts = dict(checked.failures)
    for legacy_id, rel, index in checked.ids:
        # the first record with an id that loads wins; later ones name it (the schema's own
        # uniqueness check does not know which of the duplicates is valid)
        key = (rel, index)
        found = [v for v in verdicts.pop(key, []) if v.rule != UNIQUE_RULE]
        if hash(legacy_id) in repeated:  # else its only occurrence
            if legacy_id in first_seen:
                found.insert(0, Violation(UNIQUE_RULE, "error", f"{DUPLICATE_ID} {legacy_id!r}: first seen in {first_seen[legacy_id]}"))
            elif not (config.validate_data and blocks(found)):
                first_seen[legacy_id] = rel
        if found:
            verdicts[key] = found
    blocking: Verdicts = {}
    warnings: Verdicts = {}
    for key, found in verdicts.items():
        if (config.validate_data and blocks(found)) or any(v.rule == UNIQUE_RULE for v in found):
            blocking[key] = found
        else:
            warnings[key] = found
    return blocking, warnings


def batch_policy(config: MigrationConfig, checked: BatchVerdicts) -> tuple[Verdicts, Verdicts]:
    """``apply_verdicts`` for a batch on its own: duplicates within it are caught here, and
    duplicates across batches by the write (``loader.write_batch``), against the target."""
    return apply_verdicts(config, checked, repeated_hashes(legacy_id for legacy_id, _, _ in checked.ids), {})
