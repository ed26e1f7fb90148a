"""Command-line face of the migration: ``python -m migration_assets.cli migrate ...``.

Exit codes: 0 the run completed (even if some inputs were rejected), 1 the run failed,
2 bad arguments.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from migration_assets.config import MigrationConfig, database_url_from_env
from migration_assets.outputs import OutputNotWritable, check_writable
from migration_assets.rules import MigrationRules, RulesError, load_rules
from migration_assets.store.database import redact_url

RULES_OPTION = click.option(
    "--rules",
    "rules_file",
    default=None,
    envvar="MIGRATION_RULES_FILE",
    metavar="FILE",
    help="TOML or YAML rules file: field mapping and validation rules (default: $MIGRATION_RULES_FILE, else the built-in rules).",
)


def rules_or_exit(rules_file: str | None) -> tuple[str | None, MigrationRules]:
    """The rules file resolved and checked before anything is read: a bad one ends the command
    with one line naming the key and why, and exit code 2."""
    path = str(Path(rules_file).expanduser().resolve()) if rules_file else None
    try:
        return path, load_rules(path)
    except RulesError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def rules_line(rules: MigrationRules) -> str:
    return f"Rules: {rules.source or 'the built-in defaults'} (hash {rules.hash[:12]})"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Migrate a legacy content store into the unified database, as Dagster assets."""


@cli.command()
@click.option("--source", "source", required=True, type=click.Path(exists=True, file_okay=False), help="Legacy source directory.")
@click.option("--backup", "backup", required=True, type=click.Path(file_okay=False), help="Directory for backups and reports.")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(min=1), help="Files per batch.")
@click.option("--dry-run", is_flag=True, help="Plan, parse and validate; report the planned counts; write nothing to the target.")
@click.option("--incremental", is_flag=True, help="Only new, changed and drifted files (unchanged ones are not even read).")
@click.option("--prune-removed", is_flag=True, help="Delete the records of files no longer in this source.")
@click.option("--no-validate", is_flag=True, help="Record validation failures but load the records anyway.")
@click.option("--parallel", is_flag=True, help="Parse and validate in a process pool.")
@click.option("--max-workers", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--max-file-size", default=50 * 1024 * 1024, show_default=True, type=click.IntRange(min=1), help="Bytes.")
@click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
@RULES_OPTION
@click.option("--verbose", "-v", is_flag=True, help="Show the run's progress and every file that was not migrated.")
def migrate(
    source: str,
    backup: str,
    batch_size: int,
    dry_run: bool,
    incremental: bool,
    prune_removed: bool,
    no_validate: bool,
    parallel: bool,
    max_workers: int,
    max_file_size: int,
    database_url: str | None,
    rules_file: str | None,
    verbose: bool,
) -> None:
    """Materialize the migration assets on the Dagster instance in $DAGSTER_HOME and write
    BACKUP/migration_report.json and BACKUP/migration_summary.txt."""
    from migration_assets.runner import run_migration

    rules_path, _ = rules_or_exit(rules_file)
    config = MigrationConfig(
        source_directory=str(Path(source).resolve()),
        backup_directory=str(Path(backup).resolve()),
        batch_size=batch_size,
        incremental=incremental,
        prune_removed=prune_removed,
        validate_data=not no_validate,
        max_file_size=max_file_size,
        parallel_processing=parallel,
        max_workers=max_workers,
        rules_file=rules_path,
    )
    url = database_url or database_url_from_env()
    try:
        check_writable(config.backup_path)
    except OutputNotWritable as exc:
        click.echo(f"Migration refused: {exc}", err=True)
        sys.exit(1)
    if dry_run:
        _dry_run(config, url, verbose)
        return
    try:
        # a failed step's stack trace goes to the run's log in the Dagster instance; here, one line
        outcome = run_migration(config, url, log_level="INFO" if verbose else "CRITICAL")
    except SQLAlchemyError as exc:
        click.echo(f"Migration failed: the target database {redact_url(url)} cannot be used: {one_line(exc)}", err=True)
        sys.exit(1)
    if outcome is None:
        click.echo(f"Nothing to migrate: no new, changed or drifted files under {config.source_path}.")
        return
    if not outcome.success:
        click.echo(f"Migration run {outcome.run_id} failed: {outcome.error}", err=True)
        sys.exit(1)
    if verbose:
        click.echo(outcome.summary_path.read_text(encoding="utf-8"))
    else:
        from migration_assets.reports import short_summary
        from migration_assets.store.database import get_engine

        click.echo(short_summary(get_engine(url), outcome.run_id))  # the report of a large run is large: not read back
    click.echo(f"Report: {outcome.report_path}\nSummary: {outcome.summary_path}")


def _dry_run(config: MigrationConfig, url: str, verbose: bool) -> None:
    from migration_assets.reports import render_dry_run
    from migration_assets.service import dry_run

    try:
        report = dry_run(config, url)
    except SQLAlchemyError as exc:
        click.echo(f"Dry run failed: the target database {redact_url(url)} cannot be read: {one_line(exc)}", err=True)
        sys.exit(1)
    config.backup_path.mkdir(parents=True, exist_ok=True)
    report_path = config.backup_path / "dry_run_report.json"
    report_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    summary = render_dry_run(report)
    click.echo(summary if verbose else summary.split("\n\n")[0])
    click.echo(f"Report: {report_path}")


def one_line(exc: BaseException) -> str:
    """An error as one line: a database's own message without SQLAlchemy's statement dump."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        text = str(orig) if orig is not None else str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@cli.command()
@click.argument("run_id", required=False)
@click.option("--rollback-file", "rollback_file", default=None, type=click.Path(dir_okay=False), help="BACKUP/rollback_info.json of the run.")
@click.option("--confirm", is_flag=True, help="Carry it out (without: show what would be undone, change nothing).")
@click.option("--cascade", is_flag=True, help="Also roll back the runs built on this one, first.")
@click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
def rollback(run_id: str | None, rollback_file: str | None, confirm: bool, cascade: bool, database_url: str | None) -> None:
    """Restore the target to exactly its state before a run (RUN_ID, or the run of
    --rollback-file): rows it inserted are deleted, rows it updated or deleted come back as they
    were (mappings, knowledge items and embeddings included). The run's backup is the one the
    target's migration_backups records; a rollback file must agree with it."""
    from migration_assets.backup import BackupError
    from migration_assets.rollback import rollback as undo
    from migration_assets.store.database import TargetMissing, existing_engine

    if not run_id and not rollback_file:
        click.echo("Error: name the run to roll back: RUN_ID, or --rollback-file FILE", err=True)
        sys.exit(2)
    url = database_url or database_url_from_env()
    try:
        engine = existing_engine(url)
        plan = undo(engine, Path(rollback_file) if rollback_file else None, url, run_id=run_id, confirm=confirm, cascade=cascade)
    except BackupError as exc:
        click.echo(f"Rollback refused: {exc}", err=True)
        sys.exit(1)
    except (TargetMissing, SQLAlchemyError, OSError) as exc:
        click.echo(f"Rollback failed: the target database {redact_url(url)} cannot be used: {one_line(exc)}", err=True)
        sys.exit(1)
    for each in plan.runs:
        changes = ", ".join(f"{n} {kind}" for kind, n in sorted(plan.changes[each].items())) or "no changes"
        click.echo(f"{'Rolled back' if plan.applied else 'Would roll back'} run {each}: undo {changes}")
    if not plan.applied:
        click.echo("Nothing was changed. Add --confirm to carry it out.")


@cli.command("export")
@click.option("--output", "output", required=True, type=click.Path(file_okay=False), help="Folder for content_items.jsonl and manifest.json.")
@click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
def export_command(output: str, database_url: str | None) -> None:
    """Export the current content items to JSON Lines, with a sha256 manifest."""
    from migration_assets.store.database import TargetMissing, existing_engine
    from migration_assets.transfer import export_content

    url = database_url or database_url_from_env()
    try:
        check_writable(Path(output))
        manifest = export_content(existing_engine(url), Path(output), url)
    except OutputNotWritable as exc:
        click.echo(f"Export failed: {exc}", err=True)
        sys.exit(1)
    except (TargetMissing, SQLAlchemyError, OSError) as exc:
        click.echo(f"Export failed: the target database {redact_url(url)} cannot be read: {one_line(exc)}", err=True)
        sys.exit(1)
    click.echo(f"Exported {manifest['files'][0]['rows']} content items to {output}")


@cli.command("import")
@click.option("--input", "source", required=True, type=click.Path(exists=True, file_okay=False), help="Folder of an export.")
@click.option("--backup", "backup", default=None, type=click.Path(file_okay=False), help="Backups and report (default: $MIGRATION_BACKUP_DIR).")
@click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
@click.option("--no-validate", is_flag=True, help="Record rule failures but import the lines anyway (a duplicate id is still refused).")
@RULES_OPTION
def import_command(source: str, backup: str | None, database_url: str | None, no_validate: bool, rules_file: str | None) -> None:
    """Import an export: its manifest verified whole, every line checked against the rules (a bad
    line is rejected alone, with its reasons, in the report), content items upserted by legacy id
    in batches written all or nothing and journaled (roll the import back like a migration),
    then knowledge items and embeddings rebuilt from them."""
    from migration_assets.backup import BackupError
    from migration_assets.config import backup_directory_from_env
    from migration_assets.service import import_export
    from migration_assets.transfer import ExportError

    rules_path, _ = rules_or_exit(rules_file)
    url = database_url or database_url_from_env()
    input_dir = Path(source).resolve()
    backup_dir = str(Path(backup or backup_directory_from_env()).resolve())
    config = MigrationConfig(source_directory=str(input_dir), backup_directory=backup_dir, validate_data=not no_validate, rules_file=rules_path)
    try:
        outcome = import_export(config, url, input_dir)
    except (ExportError, OutputNotWritable) as exc:
        click.echo(f"Import refused: {exc}", err=True)
        sys.exit(1)
    except (BackupError, SQLAlchemyError, OSError) as exc:
        click.echo(f"Import failed: {one_line(exc)}", err=True)
        sys.exit(1)
    counts = outcome.counts
    click.echo(
        f"Imported (run {outcome.run_id}): {counts['inserted']} inserted, {counts['updated']} updated, {counts['unchanged']} unchanged, "
        f"{counts['rejected']} rejected, {counts['warned']} with warnings"
    )
    for rule, tally in outcome.by_rule.items():
        click.echo(f"  {rule:<24} {tally['rejected']:>6} rejected  {tally['warned']:>6} warned")
    if outcome.report_path:
        click.echo(f"Report: {outcome.report_path}")


@cli.command()
@click.option("--source", "source", required=True, type=click.Path(exists=True, file_okay=False), help="Legacy source directory.")
@click.option("--output", "output", required=True, type=click.Path(dir_okay=False, writable=True), help="Where to write the JSON report.")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(min=1), help="Files per batch.")
@click.option("--max-file-size", default=50 * 1024 * 1024, show_default=True, type=click.IntRange(min=1), help="Bytes.")
@RULES_OPTION
@click.option("--verbose", "-v", is_flag=True, help="Print every invalid file and record, and the records that would load with a warning.")
def validate(source: str, output: str, batch_size: int, max_file_size: int, rules_file: str | None, verbose: bool) -> None:
    """Parse and validate the source under the rules in force without writing any database; report
    what is invalid and why, per rule."""
    from migration_assets.service import validate_source

    rules_path, rules = rules_or_exit(rules_file)
    try:
        check_writable(Path(output).resolve().parent)
    except OutputNotWritable as exc:
        click.echo(f"Validation refused: {exc}", err=True)
        sys.exit(1)
    source_dir = str(Path(source).resolve())
    config = MigrationConfig(
        source_directory=source_dir, backup_directory=source_dir, batch_size=batch_size, max_file_size=max_file_size, rules_file=rules_path
    )
    report = validate_source(config)
    Path(output).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    totals = report["totals"]
    click.echo(
        f"{totals.get('files', 0)} files: {totals.get('valid_files', 0)} valid, {totals.get('invalid_files', 0)} invalid, "
        f"{totals.get('skipped_files', 0)} skipped; {totals.get('records', 0)} records: {totals.get('valid_records', 0)} valid "
        f"({totals.get('warned_records', 0)} with warnings), {totals.get('invalid_records', 0)} invalid. Report: {output}"
    )
    click.echo(rules_line(rules))
    for rule, counts in report["by_rule"].items():
        click.echo(f"  {rule:<24} {counts['rejected']:>6} rejected  {counts['warned']:>6} warned")
    if verbose:
        for f in report["invalid_files"]:
            click.echo(f"  [invalid file] {f['path']}: {f['reason']}")
        for r in report["invalid_records"]:
            click.echo(f"  [invalid record] {r['path']} #{r['index']}: {'; '.join(r['reasons'])}")
        for r in report["warned_records"]:
            click.echo(f"  [warning] {r['path']} #{r['index']}: {'; '.join(r['reasons'])}")
        for f in report["skipped_files"]:
            click.echo(f"  [skipped] {f['path']}: {f['reason']}")


@cli.command("check-incremental")
@click.option("--source", "source", required=True, type=click.Path(exists=True, file_okay=False), help="Legacy source directory.")
@click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
@click.option("--max-file-size", default=50 * 1024 * 1024, show_default=True, type=click.IntRange(min=1), help="Bytes.")
@RULES_OPTION
@click.option("--verbose", "-v", is_flag=True, help="List the files of each kind.")
def check_incremental(source: str, database_url: str | None, max_file_size: int, rules_file: str | None, verbose: bool) -> None:
    """Print what an incremental migration would do — new, changed, drifted, removed and unchanged
    files, and files migrated again because the rules changed — without writing anything."""
    from migration_assets.store.database import readonly_engine
    from migration_assets.waves import plan_incremental

    rules_path, rules = rules_or_exit(rules_file)
    source_dir = str(Path(source).resolve())
    config = MigrationConfig(source_directory=source_dir, backup_directory=source_dir, max_file_size=max_file_size, rules_file=rules_path)
    url = database_url or database_url_from_env()
    engine = readonly_engine(url)
    try:
        plan = plan_incremental(engine, config, rules=rules)
    except SQLAlchemyError as exc:
        click.echo(f"The target database {redact_url(url)} cannot be read: {str(exc).splitlines()[0]}", err=True)
        sys.exit(1)
    finally:
        engine.dispose()
    counts = plan.counts()
    click.echo(
        f"{source_dir}: {counts['new']} new, {counts['changed']} changed, {counts['drifted']} drifted (rows lost in the target), "
        f"{counts['removed']} removed, {counts['unchanged']} unchanged, {counts['pending']} in waves not yet migrated, "
        f"{counts['refused']} unchanged but with records the target refused (retried by migrate --incremental); "
        f"{counts['reevaluate']} to re-evaluate (records rejected or warned under other validation rules), "
        f"{counts['remapped']} remapped (migrated under another field mapping)"
    )
    click.echo(rules_line(rules))
    if verbose:
        for label, files in (
            ("new", plan.new),
            ("changed", plan.changed),
            ("drifted", plan.drifted),
            ("pending", plan.pending),
            ("refused", plan.refused),
            ("reevaluate", plan.reevaluate),
            ("remapped", plan.remapped),
        ):
            for f in files:
                click.echo(f"  [{label}] {f.rel_path}")
        for path in plan.removed:
            click.echo(f"  [removed] {path}")
        for f in plan.unchanged:
            click.echo(f"  [unchanged] {f.rel_path}")


def main() -> None:
    try:
        cli()
    finally:
        # The command is done and the process ends: freezing what is alive spares the
        # interpreter's shutdown from scanning it with the collector over and over (0.6 s after
        # a large migration). Every file and connection is closed by now.
        gc.freeze()


if __name__ == "__main__":
    main()
