"""The migration workflow's commands, in the spec's order: ``analyze``, ``validate``, ``migrate``
(with ``--dry-run``), and ``check-incremental``."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import click

from migration_assets.cli.common import (
    DATABASE_OPTION,
    RULES_OPTION,
    Failure,
    Output,
    Progress,
    Result,
    one_line,
    output_options,
    readable_folder,
    reported,
    rules_line,
    rules_of,
    target_url,
)
from migration_assets.config import MAX_BATCH_SIZE, MAX_FILE_SIZE, MAX_WAVES, MAX_WORKERS, MAX_WRITE_CONNECTIONS, MigrationConfig
from migration_assets.outputs import OutputNotWritable, check_writable
from migration_assets.store.database import redact_url

SOURCE_OPTION = click.option("--source", "source", required=True, type=click.Path(exists=True, file_okay=False), help="Legacy source directory.")
MAX_FILE_SIZE_OPTION = click.option(
    "--max-file-size", default=50 * 1024 * 1024, show_default=True, type=click.IntRange(1, MAX_FILE_SIZE), help="Largest file processed, in bytes."
)


def _writable(folder: Path, what: str) -> None:
    try:
        check_writable(folder)
    except OutputNotWritable as exc:
        raise Failure(f"{what}: {exc}", kind="not_writable") from None


@click.command()
@SOURCE_OPTION
@click.option("--output", "output", default=None, type=click.Path(dir_okay=False), help="Where to write the JSON analysis.")
@MAX_FILE_SIZE_OPTION
@RULES_OPTION
@output_options
@reported
def analyze(out: Output, source: str, output: str | None, max_file_size: int, rules_file: str | None) -> Result:
    """Phase 1 of a migration: what the source holds and what migrating it will take. Files by
    format and extension, sizes, encodings, records (estimated from a sample), files that will
    be skipped and why, duplicate files, and an estimate of the time and disk a migration needs,
    from a sample parsed on this machine. Reads the source; writes nothing but its output file.

    \b
    Example:
      python -m migration_assets.cli analyze --source /legacy/data --output analysis.json
    """
    from migration_assets.analysis import analyze_source

    rules_path, _ = rules_of(rules_file)
    folder = readable_folder(source)
    if output:
        _writable(Path(output).resolve().parent, "the output file's folder")
    config = MigrationConfig(source_directory=str(folder), backup_directory=str(folder), max_file_size=max_file_size, rules_file=rules_path)
    progress = out.progress("analyze")
    try:
        report = analyze_source(config, on_progress=lambda done, total: progress.update(done, total))
    finally:
        progress.close()
    if output:
        Path(output).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    totals, estimate = report["totals"], report["estimate"]
    lines = [
        f"{folder}: {totals['files']} files, {totals['bytes']:,} bytes; {totals['eligible']} to parse, {totals['skipped']} to skip, "
        f"about {totals['records_estimate']:,} records (estimated); {report['duplicates']['groups']} groups of identical files",
        *(f"  {fmt:<10} {n['files']:>7} files {n['bytes']:>13,} bytes  ~{n['records_estimate']:,} records" for fmt, n in report["by_format"].items()),
        f"Estimate: {estimate['seconds_low']:.0f}–{estimate['seconds_high']:.0f} s and {estimate['target_mb']:,.0f} MB in the target",
        f"  ({estimate['basis']})",
    ]
    if out.verbose:
        lines += [f"  [skip] {f['path']}: {f['reason']}" for f in report["skipped_files"]]
    if output:
        lines.append(f"Analysis: {output}")
    return Result(lines[0], report, lines)


@click.command()
@SOURCE_OPTION
@click.option("--output", "output", required=True, type=click.Path(dir_okay=False), help="Where to write the JSON report.")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, MAX_BATCH_SIZE), help="Files per batch.")
@MAX_FILE_SIZE_OPTION
@RULES_OPTION
@output_options
@reported
def validate(out: Output, source: str, output: str, batch_size: int, max_file_size: int, rules_file: str | None) -> Result:
    """Parse and validate the source under the rules in force without writing any database; report
    what is invalid and why, per rule.

    \b
    Example:
      python -m migration_assets.cli validate --source /legacy/data --output validation.json --verbose
    """
    from migration_assets.service import validate_source

    rules_path, rules = rules_of(rules_file)
    folder = readable_folder(source)
    _writable(Path(output).resolve().parent, "the output file's folder")
    config = MigrationConfig(
        source_directory=str(folder), backup_directory=str(folder), batch_size=batch_size, max_file_size=max_file_size, rules_file=rules_path
    )
    progress = out.progress("validate", unit="batches")
    try:
        report = validate_source(config, on_batch=lambda done, total: progress.update(done, total))
    finally:
        progress.close()
    Path(output).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    from migration_assets.operations import validation_message

    message = f"{validation_message(report)}. Report: {output}"
    lines = [message, rules_line(rules)]
    lines += [f"  {rule:<24} {counts['rejected']:>6} rejected  {counts['warned']:>6} warned" for rule, counts in report["by_rule"].items()]
    if out.verbose:
        lines += [f"  [invalid file] {f['path']}: {f['reason']}" for f in report["invalid_files"]]
        lines += [f"  [invalid record] {r['path']} #{r['index']}: {'; '.join(r['reasons'])}" for r in report["invalid_records"]]
        lines += [f"  [warning] {r['path']} #{r['index']}: {'; '.join(r['reasons'])}" for r in report["warned_records"]]
        lines += [f"  [skipped] {f['path']}: {f['reason']}" for f in report["skipped_files"]]
    return Result(message, report, lines)


def _watch_run(url: str, partition_key: str, progress: Progress, stop: threading.Event, out: Output) -> None:
    """Follow the run of a wave from its own progress rows, until ``stop`` (read-only: the run's
    writes never wait on it)."""
    from sqlalchemy import select

    from migration_assets.status import progress_of
    from migration_assets.store.database import readonly_engine
    from migration_assets.store.tables import RUNS

    engine = readonly_engine(url)
    announced = False
    try:
        while not stop.wait(0.5):
            try:
                with engine.connect() as conn:
                    row = conn.execute(
                        select(RUNS.c.id, RUNS.c.status, RUNS.c.stats).where(RUNS.c.partition_key == partition_key).order_by(RUNS.c.started_at.desc())
                    ).first()
            except Exception:  # noqa: BLE001 - the watcher only shows; the run decides
                continue
            if row is None:
                continue
            if not announced:
                out.event("Migration started", migration_id=row.id, wave=partition_key)
                announced = True
            shown = progress_of(row.stats or {}, row.status)
            if shown and isinstance(shown.get("files"), int):
                progress.update(
                    shown.get("files_done", 0),
                    shown["files"],
                    inserted=shown.get("inserted"),
                    rejected=shown.get("rejected"),
                    **{"files/s": shown.get("files_per_second")},
                )
    finally:
        engine.dispose()


@click.command()
@SOURCE_OPTION
@click.option("--backup", "backup", required=True, type=click.Path(file_okay=False), help="Directory for backups and reports.")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, MAX_BATCH_SIZE), help="Files per batch.")
@click.option("--dry-run", is_flag=True, help="Plan, parse and validate; report the planned counts; write nothing to the target.")
@click.option("--incremental", is_flag=True, help="Only new, changed and drifted files (unchanged ones are not even read).")
@click.option("--prune-removed", is_flag=True, help="Delete the records of files no longer in this source.")
@click.option("--no-validate", is_flag=True, help="Record validation failures but load the records anyway.")
@click.option("--parallel", is_flag=True, help="Parse and validate in a process pool.")
@click.option("--max-workers", default=4, show_default=True, type=click.IntRange(1, MAX_WORKERS), help="Size of that pool.")
@click.option(
    "--write-connections",
    default=2,
    show_default=True,
    type=click.IntRange(1, MAX_WRITE_CONNECTIONS),
    help="PostgreSQL: batches written at once, each over a connection of its own (SQLite has one writer).",
)
@click.option(
    "--waves",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_WAVES),
    help="Split the work into this many waves, run at once as Dagster runs through the instance's run queue "
    "(a dagster-daemon dequeues them; one is started for them when none runs).",
)
@click.option(
    "--embedding-provider",
    default=None,
    envvar="MIGRATION_EMBEDDING_PROVIDER",
    help="hashing (default), minilm or minilm-static (the semantic extra); default: $MIGRATION_EMBEDDING_PROVIDER.",
)
@MAX_FILE_SIZE_OPTION
@DATABASE_OPTION
@RULES_OPTION
@output_options
@reported
def migrate(
    out: Output,
    source: str,
    backup: str,
    batch_size: int,
    dry_run: bool,
    incremental: bool,
    prune_removed: bool,
    no_validate: bool,
    parallel: bool,
    max_workers: int,
    write_connections: int,
    waves: int,
    embedding_provider: str | None,
    max_file_size: int,
    database_url: str | None,
    rules_file: str | None,
) -> Result:
    """Migrate the source into the target: a run of the Dagster ``migrate`` job on the instance in
    $DAGSTER_HOME (it shows in the UI's history), with live progress, then
    BACKUP/migration_report.json and BACKUP/migration_summary.txt.

    \b
    Examples:
      python -m migration_assets.cli migrate --source /legacy/data --backup /backups --dry-run --verbose
      python -m migration_assets.cli migrate --source /legacy/data --backup /backups --verbose
      python -m migration_assets.cli migrate --source /legacy/data --backup /backups --incremental
      python -m migration_assets.cli migrate --source /legacy/data --backup /backups --waves 4 --parallel
    """
    rules_path, _ = rules_of(rules_file)
    folder = readable_folder(source)
    config = MigrationConfig(
        source_directory=str(folder),
        backup_directory=str(Path(backup).resolve()),
        batch_size=batch_size,
        incremental=incremental,
        prune_removed=prune_removed,
        validate_data=not no_validate,
        max_file_size=max_file_size,
        parallel_processing=parallel,
        max_workers=max_workers,
        write_connections=write_connections,
        rules_file=rules_path,
    )
    url = target_url(database_url)
    _writable(config.backup_path, "the backup directory")
    from migration_assets.service import SourceUnusable, check_backup_outside_source  # the pipeline's modules: only for work

    try:
        check_backup_outside_source(config)
    except SourceUnusable as exc:
        raise Failure(str(exc), code=2, kind="usage_error") from None
    if embedding_provider:
        from migration_assets.embeddings import get_provider

        try:
            embedding_provider = get_provider(embedding_provider).name
        except (ValueError, RuntimeError) as exc:  # unknown, or its extra is not installed
            raise Failure(str(exc), code=2, kind="usage_error") from None
    if dry_run:
        if waves > 1:
            raise Failure("--waves runs the migration, --dry-run writes nothing: give one of them", code=2, kind="usage_error")
        return _dry_run(out, config, url)
    if waves > 1:
        return _concurrent_waves(out, config, url, waves, embedding_provider)
    from sqlalchemy.exc import SQLAlchemyError

    from migration_assets.runner import InstanceUnavailable, from_instance_storage, run_migration

    progress = out.progress("migrate")
    stop = threading.Event()
    watchers: list[threading.Thread] = []

    def watch(partition_key: str) -> None:
        watcher = threading.Thread(target=_watch_run, args=(url, partition_key, progress, stop, out), daemon=True)
        watcher.start()
        watchers.append(watcher)

    try:
        # a failed step's stack trace goes to the run's log in the Dagster instance; here, one line
        outcome = run_migration(config, url, log_level="INFO" if out.verbose else "CRITICAL", on_planned=watch, embedding_provider=embedding_provider)
    except InstanceUnavailable as exc:
        raise Failure(str(exc), kind="instance_error") from None
    except SQLAlchemyError as exc:
        if from_instance_storage(exc):
            raise Failure(
                f"the Dagster instance (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}) cannot be used: {one_line(exc)}", kind="instance_error"
            ) from None
        raise Failure(f"the target database {redact_url(url)} cannot be used: {one_line(exc)}", kind="database_error") from None
    finally:
        stop.set()
        for watcher in watchers:
            watcher.join(timeout=5)
        progress.close()
    if outcome is None:
        message = f"Nothing to migrate: no new, changed or drifted files under {config.source_path}."
        return Result(message, {"run_id": None, "status": "nothing_to_do", "source_directory": str(config.source_path)})
    if not outcome.success:
        raise Failure(f"migration run {outcome.run_id} failed: {outcome.error}", details={"run_id": outcome.run_id})
    from migration_assets.reports import short_summary
    from migration_assets.status import run_status
    from migration_assets.store.database import get_engine

    engine = get_engine(url)
    document = {**run_status(engine, outcome.run_id), "report": str(outcome.report_path), "summary": str(outcome.summary_path)}
    out.event("Migration completed", migration_id=outcome.run_id, totals=document["totals"])
    line = short_summary(engine, outcome.run_id)  # the report of a large run is large: not read back
    lines = [outcome.summary_path.read_text(encoding="utf-8")] if out.verbose else [line]
    return Result(line, document, [*lines, f"Report: {outcome.report_path}", f"Summary: {outcome.summary_path}"])


def _concurrent_waves(out: Output, config: MigrationConfig, url: str, count: int, embedding_provider: str | None) -> Result:
    """``migrate --waves K``: the work as K waves, run at once through the run queue; one
    document for the group (its summary, and each run's report)."""
    from sqlalchemy.exc import SQLAlchemyError

    from migration_assets.reports import REPORT_FILE, run_report_dir
    from migration_assets.run_queue import QueueUnavailable
    from migration_assets.runner import InstanceUnavailable, from_instance_storage, run_waves
    from migration_assets.status import group_summary
    from migration_assets.store.database import get_engine

    progress = out.progress("migrate")
    stop = threading.Event()
    watchers: list[threading.Thread] = []

    def watch(group: str, waves: list[Any]) -> None:
        out.event("Waves planned", group=group, waves={wave.partition_key: wave.file_count for wave in waves})
        total = sum(wave.file_count for wave in waves)
        watcher = threading.Thread(target=_watch_group, args=(url, group, total, progress, stop), daemon=True)
        watcher.start()
        watchers.append(watcher)

    groups: list[str] = []

    def planned(group: str, waves: list[Any]) -> None:
        groups.append(group)
        watch(group, waves)

    def stop_on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # as Ctrl-C: the queued runs are cancelled on the way out

    previous = signal.signal(signal.SIGTERM, stop_on_term)
    try:
        outcome = run_waves(
            config, url, count, log_level="INFO" if out.verbose else "CRITICAL", embedding_provider=embedding_provider, on_planned=planned
        )
    except KeyboardInterrupt:
        group = f" (history --group {groups[0]})" if groups else ""
        raise Failure(f"interrupted: the wave runs still queued were cancelled, those started go on{group}", code=130, kind="interrupted") from None
    except (InstanceUnavailable, QueueUnavailable) as exc:
        raise Failure(str(exc), kind="instance_error") from None
    except SQLAlchemyError as exc:
        if from_instance_storage(exc):
            raise Failure(
                f"the Dagster instance (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}) cannot be used: {one_line(exc)}", kind="instance_error"
            ) from None
        raise Failure(f"the target database {redact_url(url)} cannot be used: {one_line(exc)}", kind="database_error") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop.set()
        for watcher in watchers:
            watcher.join(timeout=5)
        progress.close()
    if outcome is None:
        message = f"Nothing to migrate: no new, changed or drifted files under {config.source_path}."
        return Result(message, {"run_id": None, "status": "nothing_to_do", "source_directory": str(config.source_path)})
    summary = group_summary(get_engine(url), outcome.group)
    reports = {run_id: str(run_report_dir(config.backup_path, run_id) / REPORT_FILE) for run_id in outcome.run_ids}
    document = {**summary, "waves": outcome.waves, "run_ids": outcome.run_ids, "reports": reports, "daemon_started": outcome.daemon_started}
    if not outcome.success:
        document["status"] = "failed"  # a wave whose run never started has no row to say so
        failed = "; ".join(f"run {run_id}: {error}" for run_id, error in outcome.errors.items())
        raise Failure(
            f"migration group {outcome.group}: {len(outcome.errors)} of {len(outcome.run_ids)} wave runs failed: {failed}", details=document
        )
    totals, records = summary["totals"], summary["totals"].get("records") or {}
    line = (
        f"Group {outcome.group} {summary['status']}: {len(outcome.run_ids)} waves run at once, {totals.get('files', 0)} files "
        f"({totals.get('migrated', 0)} migrated, {totals.get('skipped', 0)} skipped, {totals.get('rejected', 0)} rejected); "
        f"{records.get('found', 0)} records ({records.get('inserted', 0)} inserted, {records.get('updated', 0)} updated, "
        f"{records.get('unchanged', 0)} unchanged, {records.get('rejected', 0)} rejected)"
    )
    out.event("Migration completed", group=outcome.group, totals=totals)
    lines = [line] + [f"  wave {run['wave']}: run {run['run_id']} {run['status']}, {run['files']} files" for run in summary["runs"]]
    lines.append(f"Reports: {run_report_dir(config.backup_path, '<run id>')}; history --group {outcome.group} lists the runs")
    return Result(line, document, lines)


def _watch_group(url: str, group: str, total: int, progress: Progress, stop: threading.Event) -> None:
    """Follow the runs of a group (``total`` files) from their progress rows, summed, until ``stop``."""
    from sqlalchemy import select

    from migration_assets.store.database import readonly_engine
    from migration_assets.store.tables import RUNS

    engine = readonly_engine(url)
    try:
        while not stop.wait(0.5):
            try:
                with engine.connect() as conn:
                    rows = conn.execute(select(RUNS.c.stats).where(RUNS.c.run_group == group)).scalars().all()
            except Exception:  # noqa: BLE001 - the watcher only shows; the runs decide
                continue
            shown = [(stats or {}).get("progress") or {} for stats in rows]
            if rows:
                progress.update(
                    sum(int(p.get("files_done") or 0) for p in shown),
                    total,
                    inserted=sum(int(p.get("inserted") or 0) for p in shown),
                    rejected=sum(int(p.get("rejected") or 0) for p in shown),
                    runs=len(rows),
                )
    finally:
        engine.dispose()


def _dry_run(out: Output, config: MigrationConfig, url: str) -> Result:
    from sqlalchemy.exc import SQLAlchemyError

    from migration_assets.reports import render_dry_run
    from migration_assets.service import dry_run

    try:
        report = dry_run(config, url)
    except SQLAlchemyError as exc:
        raise Failure(f"the target database {redact_url(url)} cannot be read: {one_line(exc)}", kind="database_error") from None
    report_path = config.backup_path / "dry_run_report.json"
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    summary = render_dry_run(report)
    return Result(
        summary.split("\n\n")[0],
        {**report, "report": str(report_path)},
        [summary if out.verbose else summary.split("\n\n")[0], f"Report: {report_path}"],
    )


@click.command("check-incremental")
@SOURCE_OPTION
@DATABASE_OPTION
@MAX_FILE_SIZE_OPTION
@RULES_OPTION
@output_options
@reported
def check_incremental(out: Output, source: str, database_url: str | None, max_file_size: int, rules_file: str | None) -> Result:
    """What an incremental migration would do — new, changed, drifted, removed and unchanged
    files, and files migrated again because the rules changed — without writing anything.

    \b
    Example:
      python -m migration_assets.cli check-incremental --source /legacy/data --verbose
    """
    from sqlalchemy.exc import SQLAlchemyError

    from migration_assets.store.database import readonly_engine
    from migration_assets.waves import plan_incremental

    rules_path, rules = rules_of(rules_file)
    folder = readable_folder(source)
    config = MigrationConfig(source_directory=str(folder), backup_directory=str(folder), max_file_size=max_file_size, rules_file=rules_path)
    url = target_url(database_url)
    engine = readonly_engine(url)
    try:
        plan = plan_incremental(engine, config, rules=rules)
    except SQLAlchemyError as exc:
        raise Failure(f"the target database {redact_url(url)} cannot be read: {one_line(exc)}", kind="database_error") from None
    finally:
        engine.dispose()
    counts = plan.counts()
    message = (
        f"{folder}: {counts['new']} new, {counts['changed']} changed, {counts['drifted']} drifted (rows lost in the target), "
        f"{counts['removed']} removed, {counts['unchanged']} unchanged, {counts['pending']} in waves not yet migrated, "
        f"{counts['refused']} unchanged but with records the target refused (retried by migrate --incremental); "
        f"{counts['reevaluate']} to re-evaluate (records rejected or warned under other validation rules), "
        f"{counts['remapped']} remapped (migrated under another field mapping)"
    )
    kinds: dict[str, list[Any]] = {
        "new": plan.new,
        "changed": plan.changed,
        "drifted": plan.drifted,
        "pending": plan.pending,
        "refused": plan.refused,
        "reevaluate": plan.reevaluate,
        "remapped": plan.remapped,
    }
    files = {label: [f.rel_path for f in found] for label, found in kinds.items()}
    files["removed"] = list(plan.removed)
    lines = [message, rules_line(rules)]
    if out.verbose:
        lines += [f"  [{label}] {path}" for label, paths in files.items() for path in paths]
        lines += [f"  [unchanged] {f.rel_path}" for f in plan.unchanged]
    return Result(message, {"source_directory": str(folder), "counts": counts, "files": files, "rules": rules.summary()}, lines)
