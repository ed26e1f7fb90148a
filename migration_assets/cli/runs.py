"""Commands about runs and what they left: ``status``, ``history``, ``stats``, ``rollback``,
``cleanup``, ``export`` and ``import``."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from migration_assets.cli.common import (
    DATABASE_OPTION,
    RULES_OPTION,
    Failure,
    Output,
    Result,
    one_line,
    output_options,
    reported,
    rules_of,
    target_url,
)
from migration_assets.config import MigrationConfig
from migration_assets.outputs import OutputNotWritable
from migration_assets.store.database import redact_url


def _existing_target(url: str) -> Engine:
    """The target, which must exist: a missing SQLite file is not created, an unreachable server
    or an unknown URL is one line."""
    from migration_assets.store.database import TargetMissing, existing_engine

    try:
        return existing_engine(url)
    except (TargetMissing, SQLAlchemyError, OSError) as exc:
        raise Failure(f"the target database {redact_url(url)} cannot be used: {one_line(exc)}", kind="database_error") from None


def _known_run(engine: Engine, run_id: str | None) -> str:
    from migration_assets.status import UnknownRun, known_run

    try:
        return known_run(engine, run_id)
    except UnknownRun as exc:
        raise Failure(str(exc), code=2, kind="unknown_run") from None


@click.command()
@click.argument("run_id", required=False)
@DATABASE_OPTION
@output_options
@reported
def status(out: Output, run_id: str | None, database_url: str | None) -> Result:
    """A run's state (the latest run without RUN_ID): its wave, its progress while it runs (files
    done of all, records, rejections, files/s, ETA, peak memory), its totals and check results
    once done, and the command that rolls it back.

    \b
    Examples:
      python -m migration_assets.cli status
      python -m migration_assets.cli status 0c791e4e-c3d1-437d-9513-97d0035e9b3d --json
    """
    from migration_assets.operations import status_document

    url = target_url(database_url)
    engine = _existing_target(url)
    message, document = status_document(engine, url, _known_run(engine, run_id))  # a run whose process is gone is not shown running
    totals, records = document["totals"], document["totals"]["records"]
    lines = [message]
    lines.append(f"  wave {document['wave'] or '-'}; started {document['started_at']}, finished {document['finished_at'] or '-'}")
    if document["group"]:
        group = document["group"]
        lines.append(
            f"  group {group['group']}: {group['status']}, {len(group['runs'])} runs, {group['totals'].get('files', 0)} files "
            f"(history --group {group['group']} lists them)"
        )
    progress = document["progress"]
    if progress and document["status"] == "running":
        eta = f", ETA {progress['eta_seconds']:.0f} s" if progress.get("eta_seconds") is not None else ""
        lines.append(
            f"  progress: {progress.get('files_done')}/{progress.get('files')} files ({progress.get('percent', 0)}%), "
            f"{progress.get('inserted', 0)} inserted, {progress.get('rejected', 0)} rejected, {progress.get('files_per_second', '?')} files/s{eta}, "
            f"peak memory {progress.get('peak_rss_mb', '?')} MB"
        )
    lines.append(
        f"  files: {totals['files']} ({totals['migrated']} migrated, {totals['skipped']} skipped, {totals['rejected']} rejected); "
        f"records: {records['found']} ({records['inserted']} inserted, {records['updated']} updated, {records['unchanged']} unchanged, "
        f"{records['rejected']} rejected)"
    )
    if document["peak_rss_mb"]:
        lines.append(f"  peak memory: {document['peak_rss_mb']} MB")
    for check in document["integrity"]:
        lines.append(f"  check {check['check']}: {'passed' if check['passed'] else 'FAILED'} — {check['message']}")
    if document["error"]:
        lines.append(f"  error: {document['error']}")
    if document["rollback_command"]:
        lines.append(f"  undo it with: {document['rollback_command']}")
    return Result(lines[0], document, lines)


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000), help="How many runs, newest first.")
@click.option("--source", "source", default=None, type=click.Path(file_okay=False), help="Only runs of this source directory.")
@click.option(
    "--group", "group", default=None, help="Only the runs of this group (the waves of one migrate --waves, a UI backfill), and its summary."
)
@DATABASE_OPTION
@output_options
@reported
def history(out: Output, limit: int, source: str | None, group: str | None, database_url: str | None) -> Result:
    """One line per run, newest first: id, when, source, mode, totals, state (rolled back or not),
    and the group of waves it ran in.

    \b
    Examples:
      python -m migration_assets.cli history --limit 10 --source /legacy/data
      python -m migration_assets.cli history --group 20261202-171500-group-3f9a1c
    """
    from migration_assets.operations import history_document
    from migration_assets.status import UnknownRun

    if group is not None and ("\x00" in group or len(group) > 255):
        raise Failure("--group: a group key has at most 255 characters and no NUL", code=2, kind="usage_error")
    engine = _existing_target(target_url(database_url))
    try:
        message, document = history_document(engine, limit=limit, source=str(Path(source).resolve()) if source else None, group=group)
    except UnknownRun as exc:
        raise Failure(str(exc), code=2, kind="unknown_run") from None
    lines = [
        f"{run['started_at'][:19]}  {run['run_id']}  {run['status']:<11} {run['mode']:<11} {run['files']:>6} files  "
        f"{run['records']['inserted']:>7} ins {run['records']['updated']:>6} upd {run['records']['unchanged']:>7} same "
        f"{run['records']['rejected']:>5} rej  {run['source_directory']}" + (f"  [group {run['group']}]" if run["group"] and not group else "")
        for run in document["runs"]
    ]
    if document["group"] is not None:
        lines.insert(0, message)
    return Result(message, document, lines or ["No runs yet."])


@click.command()
@DATABASE_OPTION
@output_options
@reported
def stats(out: Output, database_url: str | None) -> Result:
    """What the target holds: content items by format, type and source; knowledge items and
    embeddings; runs by state; rejections by reason and by rule.

    \b
    Example:
      python -m migration_assets.cli stats --json
    """
    from migration_assets.operations import stats_document

    message, document = stats_document(_existing_target(target_url(database_url)))
    content = document["content_items"]

    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{key} {value}" for key, value in counts.items()) or "none"

    lines = [
        f"Content items: {content['total']} — by format: {listed(content['by_format'])}",
        f"  by type: {listed(content['by_type'])}",
        f"  by source: {listed(content['by_source'])}",
        f"Knowledge items: {document['knowledge_items']['items']} (of {document['knowledge_items']['content_items_with_knowledge']} content items)",
        f"Embeddings: {document['embeddings']['total']} — {listed(document['embeddings']['by_model'])}",
        f"  of items too short for chunks: {listed(document['embeddings']['short_items_by_model'])}",
        f"Runs: {listed(document['runs'])}",
        f"Rejected records: {document['rejections']['total']} — {listed(document['rejections']['by_reason'])}",
        f"  by rule: {listed(document['rejections']['by_rule'])}",
        f"Rejected files: {document['rejections']['files']['total']} — {listed(document['rejections']['files']['by_reason'])}",
        f"Warnings by rule: {listed(document['warnings']['by_rule'])}",
    ]
    return Result(message, document, lines)


@click.command()
@click.argument("run_id", required=False)
@click.option("--rollback-file", "rollback_file", default=None, type=click.Path(dir_okay=False), help="BACKUP/rollback_info.json of the run.")
@click.option("--confirm", is_flag=True, help="Carry it out (without: show what would be undone, change nothing).")
@click.option("--cascade", is_flag=True, help="Also roll back the runs built on this one, first.")
@DATABASE_OPTION
@output_options
@reported
def rollback(out: Output, run_id: str | None, rollback_file: str | None, confirm: bool, cascade: bool, database_url: str | None) -> Result:
    """Restore the target to exactly its state before a run (RUN_ID, or the run of
    --rollback-file): rows it inserted are deleted, rows it updated or deleted come back as they
    were (mappings, knowledge items and embeddings included). The run's backup is the one the
    target's migration_backups records; a rollback file must agree with it.

    \b
    Examples:
      python -m migration_assets.cli rollback 0c791e4e-c3d1-437d-9513-97d0035e9b3d
      python -m migration_assets.cli rollback --rollback-file /backups/rollback_info.json --confirm
    """
    from migration_assets.backup import BackupError
    from migration_assets.operations import rollback_document

    if not run_id and not rollback_file:
        raise Failure("name the run to roll back: RUN_ID, or --rollback-file FILE", code=2, kind="usage_error")
    url = target_url(database_url)
    engine = _existing_target(url)
    if run_id:
        _known_run(engine, run_id)
    progress = out.progress("rollback", unit="runs")
    try:
        message, document = rollback_document(
            engine, url, run_id=run_id, rollback_file=Path(rollback_file) if rollback_file else None, confirm=confirm, cascade=cascade
        )
    except BackupError as exc:
        raise Failure(f"rollback refused: {exc}", kind="refused") from None
    except (SQLAlchemyError, OSError) as exc:
        raise Failure(f"the target database {redact_url(url)} cannot be used: {one_line(exc)}", kind="database_error") from None
    finally:
        progress.close()
    lines = []
    for each in document["runs"]:
        changes = ", ".join(f"{n} {kind}" for kind, n in sorted(document["changes"][each].items())) or "no changes"
        lines.append(f"{'Rolled back' if document['applied'] else 'Would roll back'} run {each}: undo {changes}")
        out.event("Rollback", migration_id=each, applied=document["applied"], changes=document["changes"][each])
    if not document["applied"]:
        lines.append("Nothing was changed. Add --confirm to carry it out.")
    return Result(lines[0], document, lines)


@click.command()
@click.argument("run_id")
@click.option("--confirm", is_flag=True, help="Carry it out; needed too when the run could still be rolled back.")
@DATABASE_OPTION
@output_options
@reported
def cleanup(out: Output, run_id: str, confirm: bool, database_url: str | None) -> Result:
    """Remove a run's backup files and staging, and record that it did. A run that can still be
    rolled back is only cleaned up with --confirm (it can no longer be undone after); content is
    never touched.

    \b
    Example:
      python -m migration_assets.cli cleanup 0c791e4e-c3d1-437d-9513-97d0035e9b3d --confirm
    """
    from migration_assets.cleanup import CleanupRefused, cleanup_run

    engine = _existing_target(target_url(database_url))
    try:
        document = cleanup_run(engine, _known_run(engine, run_id), confirm=confirm)
    except CleanupRefused as exc:
        raise Failure(str(exc), kind="refused") from None
    lines = [document["message"]] + [f"  {path}" for path in document["paths"]]
    if not document["removed"] and document["paths"]:
        lines.append("Nothing was removed. Add --confirm to carry it out.")
    return Result(document["message"], document, lines)


@click.command("export")
@click.option("--output", "output", required=True, type=click.Path(file_okay=False), help="Folder for content_items.jsonl and manifest.json.")
@DATABASE_OPTION
@output_options
@reported
def export_command(out: Output, output: str, database_url: str | None) -> Result:
    """Export the current content items to JSON Lines, with a sha256 manifest.

    \b
    Example:
      python -m migration_assets.cli export --output /exports/2026-12-01
    """
    from migration_assets.operations import export_document

    url = target_url(database_url)
    engine = _existing_target(url)
    try:
        message, manifest = export_document(engine, url, Path(output).resolve())
    except OutputNotWritable as exc:
        raise Failure(str(exc), kind="not_writable") from None
    return Result(message, manifest)


@click.command("import")
@click.option("--input", "source", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of an export.")
@click.option("--backup", "backup", default=None, type=click.Path(file_okay=False), help="Backups and report (default: $MIGRATION_BACKUP_DIR).")
@click.option("--no-validate", is_flag=True, help="Record rule failures but import the lines anyway (a duplicate id is still refused).")
@DATABASE_OPTION
@RULES_OPTION
@output_options
@reported
def import_command(out: Output, source: str, backup: str | None, no_validate: bool, database_url: str | None, rules_file: str | None) -> Result:
    """Import an export: its manifest verified whole, every line checked against the rules (a bad
    line is rejected alone, with its reasons, in the report), content items upserted by legacy id
    in batches written all or nothing and journaled (roll the import back like a migration),
    then knowledge items and embeddings rebuilt from them.

    \b
    Example:
      python -m migration_assets.cli import --input /exports/2026-12-01 --backup /backups
    """
    from migration_assets.backup import BackupError
    from migration_assets.config import backup_directory_from_env
    from migration_assets.operations import import_document
    from migration_assets.transfer import ExportError

    rules_path, _ = rules_of(rules_file)
    url = target_url(database_url)
    input_dir = Path(source).resolve()
    backup_dir = str(Path(backup or backup_directory_from_env()).resolve())
    config = MigrationConfig(source_directory=str(input_dir), backup_directory=backup_dir, validate_data=not no_validate, rules_file=rules_path)
    progress = out.progress("import", unit="lines")
    try:
        message, document = import_document(config, url, input_dir, on_lines=lambda done, total: progress.update(done, total))
    except (ExportError, OutputNotWritable) as exc:
        raise Failure(f"import refused: {exc}", kind="refused") from None
    except (BackupError, SQLAlchemyError, OSError) as exc:
        raise Failure(f"import failed: {one_line(exc)}", kind="failed") from None
    finally:
        progress.close()
    lines = [message] + [f"  {rule:<24} {tally['rejected']:>6} rejected  {tally['warned']:>6} warned" for rule, tally in document["by_rule"].items()]
    if document["report"]:
        lines.append(f"Report: {document['report']}")
    return Result(message, document, lines)
