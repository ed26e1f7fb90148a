"""The migration's use cases, in plain Python: what the assets, the CLI and the API all call.

Each stage function takes the config, the target engine and the upstream stage's output,
and returns its own output with the figures worth showing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from migration_assets import ingest
from migration_assets.backup import Journal, fernet_from_env, run_backup_dir
from migration_assets.config import MigrationConfig
from migration_assets.derivation import Derivation, DerivedRecords
from migration_assets.embeddings import EmbeddingProvider, get_provider
from migration_assets.embeddings.base import is_semantic
from migration_assets.ingest import parse_stage, validate_stage
from migration_assets.inventory import FileInventory, take_inventory
from migration_assets.memory import bulk_allocation, peak_rss_mb
from migration_assets.outputs import check_writable
from migration_assets.reports import dry_run_report, validation_report
from migration_assets.rules import MigrationRules
from migration_assets.store import derived, loader
from migration_assets.store.database import get_engine, readonly_engine, share_writes
from migration_assets.store.derived import EmbeddingCounts, KnowledgeCounts
from migration_assets.store.loader import LoadCounts
from migration_assets.store.models import ContentItem, utcnow
from migration_assets.store.retry import retry_transient
from migration_assets.store.runs import record_progress, record_rules, start_run, update_stats
from migration_assets.store.writers import BatchWriters
from migration_assets.validation import RuleTally
from migration_assets.waves import ensure_waves, finish_waves, plan_incremental, plan_waves, wave_inventory

__all__ = [
    "check_supported",
    "derivation_for",
    "dry_run",
    "embedding_stage",
    "ensure_waves",
    "finish_waves",
    "ingest_stage",
    "journal_for",
    "knowledge_stage",
    "parse_stage",
    "plan_incremental",
    "plan_waves",
    "take_inventory",
    "validate_source",
    "validate_stage",
    "wave_inventory",
]

Progress = Callable[[int, int], None]


class DryRunIsNotAMaterialization(ValueError):
    """A MigrationConfig option the asset layer does not carry out; refused rather than ignored."""


def check_supported(config: MigrationConfig) -> None:
    """Refuse options that would otherwise be silently ignored."""
    if config.dry_run:
        raise DryRunIsNotAMaterialization(
            "dry_run=true changes nothing, so it is not a materialization: plan it with "
            "`python -m migration_assets.cli migrate --dry-run` (the same plan, parse and validation, and a report of the planned counts)"
        )


def check_usable(config: MigrationConfig) -> None:
    """Refuse, with one line naming the setting and why, a run whose settings cannot work: an
    unsupported option, a source that is not a readable folder, a backup folder that takes no
    file. (A rules file that cannot be used is refused by ``config.load_rules()``.)"""
    check_supported(config)
    source = config.source_path
    if not source.is_dir():
        raise SourceUnusable(f"the source directory {source} {'is not a folder' if source.exists() else 'does not exist'}")
    try:
        next(iter(source.iterdir()), None)
    except OSError as exc:
        raise SourceUnusable(f"the source directory {source} cannot be read: {exc.strerror or exc}") from None
    check_writable(config.backup_path)
    check_backup_outside_source(config)


def check_backup_outside_source(config: MigrationConfig) -> None:
    """A backup folder inside the source would be migrated with it next time (its reports,
    journals, launch logs): ``SourceUnusable``."""
    if config.backup_path.is_relative_to(config.source_path):
        raise SourceUnusable(f"the backup directory {config.backup_path} lies inside the source directory {config.source_path}; put it elsewhere")


class SourceUnusable(ValueError):
    """The source directory is missing, not a folder or unreadable."""


@dataclass
class IngestResult:
    """What ``ingest_stage`` did: the parse's, validation's and load's counts, and a few
    examples of each for a person to look at."""

    parsed: dict[str, int]
    validated: dict[str, int]
    loaded: LoadCounts
    rules: MigrationRules
    by_rule: RuleTally = field(default_factory=RuleTally)  # the records validation rejected and warned, per rule
    parsed_examples: list[dict[str, Any]] = field(default_factory=list)
    invalid_examples: list[dict[str, Any]] = field(default_factory=list)
    worker_peak_rss_mb: float = 0.0  # the largest of the processes that parsed (this one, without a pool)


EXAMPLES = 10


def ingest_stage(
    engine: Engine,
    run_id: str,
    config: MigrationConfig,
    inventory: FileInventory,
    derivation: Derivation | None = None,
    on_batch: Progress | None = None,
    journal: Journal | None = None,
) -> IngestResult:
    """Parse, check and write every eligible file, batch by batch: the workers parse, check (and
    derive chunks and vectors for) the next batches while this process writes one, in its own
    transaction with its tracking rows; never-parsed files get their tracking rows first.

    A batch's verdicts are applied as it comes (``batch_policy``); a legacy id that an earlier
    batch of this run wrote is refused by the write. Nothing is staged on disk and nothing but
    the batches in flight is held in memory."""
    with bulk_allocation():
        return _ingest(engine, run_id, config, inventory, derivation, on_batch, journal)


def _ingest(
    engine: Engine,
    run_id: str,
    config: MigrationConfig,
    inventory: FileInventory,
    derivation: Derivation | None,
    on_batch: Progress | None,
    journal: Journal | None,
) -> IngestResult:
    rules = config.load_rules()
    counts = LoadCounts()
    total, jobs = ingest.parse_jobs(config, inventory)
    started = utcnow()
    files_total = len(inventory.files)
    stage_totals = {"batches": total, "files": files_total, "started_at": started.isoformat()}
    with engine.begin() as conn:
        share_writes(conn, "content", _file_keys(inventory.root, inventory.removed if config.prune_removed else []))
        if journal:
            journal.open_transaction(conn)
        record_rules(conn, run_id, rules.summary())
        counts.files.update(loader.record_ineligible_files(conn, run_id, inventory.files))
        if config.prune_removed and inventory.removed:
            counts.pruned = loader.prune_removed_files(conn, run_id, inventory.root, inventory.removed, journal)
        never_parsed = files_total - len(inventory.eligible)
        nothing_yet = dict.fromkeys(("batches_done", "inserted", "updated", "unchanged", "rejected"), 0)  # every count there from the start
        record_progress(
            conn,
            run_id,
            "content_items",
            added={**nothing_yet, "files_done": never_parsed},
            fixed={**stage_totals, "peak_rss_mb": peak_rss_mb()},
            start=True,
        )
    tally = ingest.ParseTally()
    validated: Counter[str] = Counter()
    result = IngestResult({}, {}, counts, rules)

    retries = threading.Lock()  # writers note theirs from their own threads

    def note_retry(_attempt: int, _exc: BaseException) -> None:
        with retries:
            counts.retries += 1

    def write(files: list[loader.FileLoad], derived: DerivedRecords | None) -> LoadCounts:
        with engine.begin() as conn:
            share_writes(conn, "content", _file_keys(inventory.root, [load.source.rel_path for load in files]))
            if journal:
                journal.open_transaction(conn)
            written = loader.write_batch(
                conn, run_id, files, source_root=inventory.root, preserve_timestamps=config.preserve_timestamps, journal=journal, derived=derived
            )
            added = {key: getattr(written, key) for key in ("inserted", "updated", "unchanged", "rejected")}
            fixed = {**stage_totals, "peak_rss_mb": peak_rss_mb()}
            record_progress(conn, run_id, "content_items", added={"batches_done": 1, "files_done": len(files), **added}, fixed=fixed)
            return written

    with BatchWriters[LoadCounts](write_connections(engine, config)) as writers:
        for n, prepared in enumerate(ingest.prepared_batches(config, inventory, jobs, rules, derivation), start=1):
            tally.add(prepared.summary())
            result.worker_peak_rss_mb = max(result.worker_peak_rss_mb, prepared.peak_rss_mb)
            blocking, warnings = ingest.batch_policy(config, prepared.verdicts)
            validated.update(valid=len(prepared.verdicts.ids) - len(blocking), invalid=len(blocking), warnings=len(warnings))
            for outcome, verdicts in (("rejected", blocking), ("warned", warnings)):
                for found in verdicts.values():
                    result.by_rule.add(outcome, [v.rule for v in found])
            files = ingest.file_loads(prepared.files, blocking, warnings)
            _keep_examples(result, prepared, blocking)

            def written(done: LoadCounts, n: int = n) -> None:
                counts.add(done)
                if on_batch:
                    on_batch(n, total)

            def attempt(files: list[loader.FileLoad] = files, derived: DerivedRecords | None = prepared.derived) -> LoadCounts:
                return retry_transient(partial(write, files, derived), on_retry=note_retry)

            legacy_ids = frozenset(record.legacy_id for load in files for record in load.parsed.records) if writers.count > 1 else frozenset()
            writers.submit(attempt, written, legacy_ids)
    result.parsed = tally.counts()
    result.validated = {k: validated.get(k, 0) for k in ("valid", "invalid", "warnings")}
    return result


def write_connections(engine: Engine, config: MigrationConfig) -> int:
    """How many batches are written at once: SQLite has one writer; PostgreSQL takes
    ``config.write_connections``, each batch over a connection of its own."""
    return config.write_connections if engine.dialect.name == "postgresql" else 1


def _file_keys(root: str, paths: Iterable[str]) -> list[str]:
    """What a content write holds while it writes these files of ``root`` (``share_writes``): two
    runs of the same file go one after the other, runs of different files side by side."""
    return [f"{root}/{path}" for path in paths]


def _keep_examples(result: IngestResult, prepared: ingest.PreparedBatch, blocking: ingest.Verdicts) -> None:
    if len(result.parsed_examples) < EXAMPLES:
        result.parsed_examples += [
            {"legacy_id": r.legacy_id, "format": r.source_format, "title": r.title, "source_path": r.source_path}
            for _, parsed in prepared.files
            for r in parsed.records
        ][: EXAMPLES - len(result.parsed_examples)]
    if len(result.invalid_examples) < EXAMPLES:
        result.invalid_examples += [
            {"source_path": path, "index": index, "reasons": "; ".join(v.message for v in found)} for (path, index), found in blocking.items()
        ][: EXAMPLES - len(result.invalid_examples)]


def derivation_for(config: MigrationConfig, load_provider: Callable[[], EmbeddingProvider]) -> Derivation:
    """How the parse derives knowledge chunks and vectors. A provider that cannot load leaves the
    vectors to the embeddings stage, which then stops with the reason (the content still lands)."""
    try:
        provider: EmbeddingProvider | None = load_provider()
    except Exception:  # noqa: BLE001 - reported by the embeddings stage, where it belongs
        provider = None
    return Derivation(config.knowledge_min_chars, config.chunk_chars, provider)


def knowledge_stage(engine: Engine, run_id: str, config: MigrationConfig, journal: Journal | None = None) -> KnowledgeCounts:
    # a retry after a transient fault resumes: the stage rebuilds only what is still stale
    return retry_transient(
        lambda: derived.refresh_knowledge_items(
            engine,
            run_id,
            min_chars=config.knowledge_min_chars,
            chunk_chars=config.chunk_chars,
            journal=journal,
            workers=config.worker_processes,
        )
    )


FRESH_WORKERS_WORTH = 2_000
"""Vectors below which a provider whose workers start fresh (the transformer) embeds in the run's
own process: each worker's start (torch, the model) costs seconds (``bench_embeddings.py``)."""


def embedding_stage(
    engine: Engine, run_id: str, provider: EmbeddingProvider | None = None, journal: Journal | None = None, *, workers: int = 1
) -> EmbeddingCounts:
    """Vectors of ``provider`` for every knowledge chunk and, with a semantic provider, for every
    content item with text but no chunk (too short to be cut), so that search finds each item by
    meaning."""
    chosen = provider or get_provider()
    batch = getattr(chosen, "batch_chunks", 4000)  # a slow model takes smaller batches, so that every worker gets some
    if workers > 1 and not getattr(chosen, "fork_safe", True) and derived.vectors_to_write(engine, chosen) < FRESH_WORKERS_WORTH:
        workers = 1  # workers started from a fresh interpreter load the model each: seconds a small stage does not win back
    counts = retry_transient(lambda: derived.refresh_embeddings(engine, run_id, chosen, batch_size=batch, journal=journal, workers=workers))
    if is_semantic(chosen):
        counts.short_items = retry_transient(lambda: derived.refresh_content_vectors(engine, run_id, chosen, batch_size=batch, workers=workers))
    else:  # a lexical provider adds nothing the text index does not find: no vectors of its own, none left of another model
        derived.drop_content_vectors(engine)
    return counts


def journal_for(config: MigrationConfig, run_id: str, stage: str) -> Journal | None:
    """The stage's backup journal, when the run keeps backups."""
    if not config.create_backups or config.dry_run:
        return None
    return Journal(run_backup_dir(config.backup_path, run_id), stage, run_id, fernet_from_env())


def validate_source(config: MigrationConfig, on_batch: Progress | None = None) -> dict[str, Any]:
    """Parse and validate ``config.source_directory`` under its rules, without touching any
    database; ``on_batch(done, total)`` hears each batch parsed."""
    rules = config.load_rules()
    inventory = take_inventory(config)
    with tempfile.TemporaryDirectory(prefix="migration-validate-") as scratch:
        scratch_config = config.model_copy(update={"backup_directory": scratch})
        validated = validate_stage(scratch_config, parse_stage(scratch_config, inventory, "validate", rules, on_batch))
        return validation_report(inventory, validated, rules)


def repair_derived(config: MigrationConfig, database_url: str, run_id: str, provider: EmbeddingProvider | None = None) -> dict[str, Any]:
    """Rebuild the derived tables over the whole target, as a run of its own (journaled, so it
    can be rolled back): every stale or missing knowledge chunk, every missing vector. Reads no
    source file; returns the counts."""
    from migration_assets.lifecycle import close_run
    from migration_assets.store.runs import start_run

    engine = get_engine(database_url)
    start_run(engine, run_id, source_directory=str(config.source_path), config=config.model_dump())
    try:
        knowledge = knowledge_stage(engine, run_id, config, journal_for(config, run_id, "knowledge"))
        vectors = embedding_stage(engine, run_id, provider, journal_for(config, run_id, "embeddings"), workers=config.worker_processes)
    except Exception as exc:
        close_run(engine, run_id, status="failed", error=f"repair: {exc}", database_url=database_url, backup_directory=config.backup_path)
        raise
    close_run(
        engine, run_id, status="completed", database_url=database_url, backup_directory=config.backup_path, create_backups=config.create_backups
    )
    return {"knowledge": dataclasses.asdict(knowledge), "embeddings": dataclasses.asdict(vectors)}


def dry_run(config: MigrationConfig, database_url: str) -> dict[str, Any]:
    """Everything up to the write — plan, parse, validate, compare with the target — and the
    counts a real run would have (insert, update, unchanged, reject, prune). Writes nothing
    to the target; reads it without creating or upgrading its schema."""
    started = time.perf_counter()
    rules = config.load_rules()
    engine = readonly_engine(database_url)
    with tempfile.TemporaryDirectory(prefix="migration-dry-run-") as scratch:
        if not inspect(engine).has_table("content_items"):
            engine.dispose()  # nothing migrated yet: plan against an empty target of the same schema
            engine = get_engine(f"sqlite:///{Path(scratch) / 'empty-target.db'}")
        plan = plan_incremental(engine, config, rules=rules)
        files = (
            plan.to_migrate + plan.refused
            if config.incremental
            else plan.new + plan.changed + plan.drifted + plan.unchanged + plan.pending + plan.refused
        )
        inventory = FileInventory(plan.root, sorted(files, key=lambda f: f.rel_path), len(plan.unchanged) if config.incremental else 0, plan.removed)
        scratch_config = config.model_copy(update={"backup_directory": scratch, "dry_run": True})
        validated = validate_stage(scratch_config, parse_stage(scratch_config, inventory, "dry-run", rules))
        counts = LoadCounts()
        with engine.connect() as conn:
            for batch in validated.batches():
                counts.add(
                    loader.write_batch(conn, "dry-run", batch, source_root=plan.root, preserve_timestamps=config.preserve_timestamps, dry_run=True)
                )
            prune = 0
            if config.prune_removed and plan.removed:
                prune = conn.execute(
                    select(func.count()).where(ContentItem.source_root == plan.root, ContentItem.source_path.in_(plan.removed))
                ).scalar_one()
        engine.dispose()
    skipped = [loader.file_status(f) for f in inventory.files if not f.eligible]
    return dry_run_report(config, inventory, counts, skipped, prune, time.perf_counter() - started, rules)


@dataclass
class ImportOutcome:
    """What an import did: its run, its counts and the rules that rejected or warned lines."""

    run_id: str
    counts: dict[str, int]
    by_rule: dict[str, dict[str, int]]
    report_path: Path | None
    not_reversible: str | None


def import_export(config: MigrationConfig, database_url: str, source: Path, on_lines: Progress | None = None) -> ImportOutcome:
    """Import an export into ``database_url`` as a run of its own: the manifest verified whole,
    every line checked against ``config``'s rules, each batch written all or nothing and
    journaled (so the import can be rolled back), knowledge and embeddings rebuilt, the run
    closed and reported in ``config.backup_directory``. Refusals (``ExportError``) and failures
    close the run as failed before they are raised."""
    from migration_assets.lifecycle import close_run, recover_stale_runs
    from migration_assets.transfer import import_content

    rules = config.load_rules()
    check_writable(config.backup_path)
    engine = get_engine(database_url)
    recover_stale_runs(engine, database_url)
    run_id = f"import-{uuid.uuid4()}"
    start_run(engine, run_id, source_directory=str(source), config={**config.model_dump(), "import": True})
    closing = partial(close_run, engine, run_id, database_url=database_url, backup_directory=config.backup_path, create_backups=config.create_backups)
    try:
        result = import_content(
            engine, source, run_id, rules=rules, journal=journal_for(config, run_id, "content"), validate_data=config.validate_data, on_lines=on_lines
        )
        knowledge_stage(engine, run_id, config, journal_for(config, run_id, "knowledge"))
        embedding_stage(engine, run_id, journal=journal_for(config, run_id, "embeddings"), workers=config.worker_processes)
        update_stats(engine, run_id, **{"import": {**result.counts(), "by_rule": result.by_rule.counts()}})
        closed = closing(status="completed")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            closing(status="failed", error=str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise
    return ImportOutcome(run_id, result.counts(), result.by_rule.counts(), closed.report_path, closed.not_reversible)
