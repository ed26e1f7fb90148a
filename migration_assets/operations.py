"""The workflow's use cases as the documents their faces return: the CLI prints them with
``--json`` (inside the envelope of ``documents.py``), the REST API returns them, the same
fields from the same function. Each returns ``(message, data)`` or raises the domain's own
error (``UnknownRun``, ``BackupError``, ``CleanupRefused``, ``ExportError``, ``RulesError``,
``OutputNotWritable``), which each face turns into its own failure. Plain Python, no Dagster."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from migration_assets.config import MigrationConfig

Document = tuple[str, dict[str, Any]]


def status_document(engine: Engine, database_url: str, run_id: str | None = None) -> Document:
    """One run (the latest without ``run_id``); a run whose process is gone is closed first, so
    that it is never shown running."""
    from migration_assets.lifecycle import recover_stale_runs
    from migration_assets.status import run_status

    recover_stale_runs(engine, database_url)
    document = run_status(engine, run_id)
    message = f"Run {document['run_id']}: {document['status']} ({document['mode']}), source {document['source_directory']}"
    return message, document


def rollback_document(
    engine: Engine, database_url: str, *, run_id: str | None, rollback_file: Path | None = None, confirm: bool, cascade: bool = False
) -> Document:
    """Undo a run (and with ``cascade`` the runs built on it, first); without ``confirm`` the plan."""
    from migration_assets.rollback import rollback

    plan = rollback(engine, rollback_file, database_url, run_id=run_id, confirm=confirm, cascade=cascade)
    verb = "Rolled back" if plan.applied else "Would roll back"
    message = f"{verb} run {plan.run_id}" + (f" and {len(plan.runs) - 1} runs built on it" if len(plan.runs) > 1 else "")
    return message, {"run_id": plan.run_id, "runs": plan.runs, "changes": plan.changes, "applied": plan.applied}


def export_document(engine: Engine, database_url: str, output: Path) -> Document:
    """Export the current content items to ``output`` (JSON Lines and a sha256 manifest)."""
    from migration_assets.outputs import OutputNotWritable, check_writable
    from migration_assets.transfer import CONTENT_FILE, MANIFEST_FILE, export_content

    inside = _migrated_source_holding(engine, output)  # before the folder is made
    if inside is not None:
        raise OutputNotWritable(f"{output} lies in {inside}, a source this target migrates: the export would be migrated with it next time")
    check_writable(output)
    others = sorted(p.name for p in output.iterdir() if p.name not in (CONTENT_FILE, MANIFEST_FILE))  # an earlier export is overwritten
    if others:  # an export written into a source folder would be migrated with it next time
        raise OutputNotWritable(
            f"{output} holds other files ({', '.join(others[:3])}{', …' if len(others) > 3 else ''}); export into a new or empty folder"
        )
    manifest = export_content(engine, output, database_url)
    return f"Exported {manifest['files'][0]['rows']} content items to {output}", {**manifest, "output": str(output)}


def _migrated_source_holding(engine: Engine, folder: Path) -> str | None:
    """The source directory of a run in the target that holds ``folder``, if any."""
    from sqlalchemy import inspect, select

    from migration_assets.store.tables import RUNS

    if not inspect(engine).has_table(RUNS.name):
        return None
    with engine.connect() as conn:
        sources = conn.execute(select(RUNS.c.source_directory).distinct()).scalars().all()
    return next((source for source in sources if source and Path(folder).resolve().is_relative_to(Path(source))), None)


def import_document(config: MigrationConfig, database_url: str, source: Path, on_lines: Callable[[int, int], None] | None = None) -> Document:
    """Import an export as a run of its own (see ``service.import_export``)."""
    from migration_assets.service import import_export

    outcome = import_export(config, database_url, source, on_lines=on_lines)
    counts = outcome.counts
    message = (
        f"Imported (run {outcome.run_id}): {counts['inserted']} inserted, {counts['updated']} updated, {counts['unchanged']} unchanged, "
        f"{counts['rejected']} rejected, {counts['warned']} with warnings"
    )
    return message, {
        "run_id": outcome.run_id,
        "counts": counts,
        "by_rule": outcome.by_rule,
        "report": str(outcome.report_path) if outcome.report_path else None,
        "reversible": outcome.not_reversible is None,
    }


def validation_message(report: dict[str, Any]) -> str:
    totals = report["totals"]
    return (
        f"{totals.get('files', 0)} files: {totals.get('valid_files', 0)} valid, {totals.get('invalid_files', 0)} invalid, "
        f"{totals.get('skipped_files', 0)} skipped; {totals.get('records', 0)} records: {totals.get('valid_records', 0)} valid "
        f"({totals.get('warned_records', 0)} with warnings), {totals.get('invalid_records', 0)} invalid"
    )


def history_document(engine: Engine, *, limit: int = 20, source: str | None = None, group: str | None = None) -> Document:
    """The latest runs, newest first (of one source directory, of one group, when given; a
    group's summary beside its runs)."""
    from migration_assets.status import run_history

    document = run_history(engine, limit=limit, source=source, group=group)
    summary = document["group"]
    if summary is None:
        return f"{len(document['runs'])} runs", document
    files, records = summary["totals"].get("files", 0), (summary["totals"].get("records") or {})
    message = (
        f"Group {group}: {summary['status']}, {len(summary['runs'])} runs, {files} files, "
        f"{records.get('inserted', 0)} records inserted, {records.get('rejected', 0)} rejected"
    )
    return message, document


def stats_document(engine: Engine) -> Document:
    """What the target holds."""
    from migration_assets.status import target_stats

    document = target_stats(engine)
    message = (
        f"{document['content_items']['total']} content items, {document['knowledge_items']['items']} knowledge items, "
        f"{document['embeddings']['total']} embeddings"
    )
    return message, document


def search_document(engine: Engine, query: str, *, limit: int = 10, filters: Any = None, provider_name: str | None = None) -> Document:
    """The best content items for ``query`` (hybrid: vectors of the provider's model, and the
    full-text index); ``filters`` a ``search.SearchFilters``."""
    from migration_assets.config import embedding_provider_from_env
    from migration_assets.embeddings import get_provider
    from migration_assets.search import search

    document = search(engine, query, provider=get_provider(provider_name or embedding_provider_from_env()), limit=limit, filters=filters)
    found = len(document["results"])
    return f"{found} result{'' if found == 1 else 's'} for {query!r}", document
