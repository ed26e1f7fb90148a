"""The run report: ``migration_report.json`` (every file and rejected record accounted for)
and ``migration_summary.txt`` (for people), both built from the tracking tables."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, select

from migration_assets.integrity import results_of_run
from migration_assets.inventory import FileInventory
from migration_assets.outputs import replace_file
from migration_assets.rules import MigrationRules
from migration_assets.store.models import (
    ContentItem,
    Embedding,
    KnowledgeItem,
)
from migration_assets.store.tables import BACKUPS, ITEMS, REJECTED, RUNS, WARNINGS, WAVES

if TYPE_CHECKING:  # the pipeline's modules (pandas, pandera): not for reading runs
    from migration_assets.ingest import ValidatedRecords

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![\w.-])\d+(?![\w.-])")  # counts and line numbers, not the 8 of UTF-8


def error_type(reason: str) -> str:
    """The kind of a rejection reason: its text before the first colon, quoted values and numbers
    left out (``legacy_id '…' is already migrated from '…'``), so that reasons group."""
    head = _NUMBER.sub("N", _QUOTED.sub("'…'", reason)).split(":", 1)[0].strip()
    return head if len(head) <= 60 else head[:57] + "..."


def count_by_rule(rejected: Iterable[list[str] | None], warned: Iterable[list[str] | None]) -> dict[str, dict[str, int]]:
    """Rejections and warnings per rule, from the rule lists of rejected and of warned records."""
    from migration_assets.validation import RuleTally

    tally = RuleTally()
    for rules in rejected:
        tally.add("rejected", rules)
    for rules in warned:
        tally.add("warned", rules)
    return tally.counts()


def rejection_entry(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A report's entry for a ``rejected_records`` row (or a dry run's planned one)."""
    return {
        "path": row["source_path"],
        "index": row["record_index"],
        "legacy_id": row["legacy_id"],
        "stage": row["stage"],
        "rules": row["rules"] or [],
        "reason": row["reason"],
    }


def warning_entry(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A report's entry for a ``record_warnings`` row (or a dry run's planned one)."""
    return {
        "path": row["source_path"],
        "index": row["record_index"],
        "legacy_id": row["legacy_id"],
        "rules": row["rules"] or [],
        "reason": row["reason"],
    }


REPORT_FILE = "migration_report.json"
SUMMARY_FILE = "migration_summary.txt"
FILE_STATUSES = ("migrated", "skipped", "rejected")
RECORD_KEYS = ("found", "inserted", "updated", "unchanged", "rejected")


def run_totals(conn: Connection, run_id: str) -> dict[str, Any]:
    """A run's files by status and its records by outcome, counted by the database."""
    sums = [func.coalesce(func.sum(ITEMS.c[f"records_{key}"]), 0) for key in RECORD_KEYS]
    rows = conn.execute(select(ITEMS.c.status, func.count(), *sums).where(ITEMS.c.run_id == run_id).group_by(ITEMS.c.status)).all()
    by_status = {status: count for status, count, *_ in rows}
    removed = by_status.get("removed", 0)
    return {
        "files": sum(by_status.values()) - removed,
        **{status: by_status.get(status, 0) for status in FILE_STATUSES},
        "removed": removed,
        "records": {key: int(sum(row[2 + i] for row in rows)) for i, key in enumerate(RECORD_KEYS)},
    }


def short_summary(engine: Engine, run_id: str) -> str:
    """One line on a run: its files and records (what the CLI prints), without reading its report."""
    with engine.connect() as conn:
        status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar_one()
        totals = run_totals(conn, run_id)
    records = totals["records"]
    return (
        f"Run {run_id} {status}: {totals['files']} files "
        f"({totals['migrated']} migrated, {totals['skipped']} skipped, {totals['rejected']} rejected); "
        f"{records['found']} records ({records['inserted']} inserted, {records['updated']} updated, "
        f"{records['unchanged']} unchanged, {records['rejected']} rejected)"
    )


def build_report(engine: Engine, run_id: str) -> dict[str, Any]:
    items = ITEMS
    rejected = REJECTED
    with engine.connect() as conn:
        run = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().first()
        if run is None:
            raise LookupError(f"no migration run {run_id!r} in the target database")
        # every file, as the report's entry for it straight from the cursor: at 50,000 files the
        # rows and the entries held side by side were the run's peak of memory
        files = [
            {
                "path": f["source_path"],
                "format": f["source_format"],
                "status": f["status"],
                "reason": f["reason"],
                "size": f["size"],
                "sha256": f["sha256"],
                "encoding": f["encoding"],
                "records": {key: f[f"records_{key}"] for key in RECORD_KEYS},
            }
            for f in conn.execute(select(items).where(items.c.run_id == run_id).order_by(items.c.source_path)).mappings()
        ]
        rejections = (
            conn.execute(select(rejected).where(rejected.c.run_id == run_id).order_by(rejected.c.source_path, rejected.c.record_index))
            .mappings()
            .all()
        )
        keys = [k for k in (run["partition_key"] or "").split(",") if k]
        waves = conn.execute(select(WAVES).where(WAVES.c.partition_key.in_(keys))).mappings().all()
        backup_rows = conn.execute(select(BACKUPS).where(BACKUPS.c.run_id == run_id)).mappings().all()
        warning_rows = conn.execute(select(WARNINGS).where(WARNINGS.c.run_id == run_id).order_by(WARNINGS.c.id)).mappings()
        warnings = [warning_entry(w) for w in warning_rows]
        totals = run_totals(conn, run_id)
        in_target = {
            "content_items": conn.execute(select(func.count()).select_from(ContentItem)).scalar_one(),
            "knowledge_items": conn.execute(select(func.count()).select_from(KnowledgeItem)).scalar_one(),
            "embeddings": conn.execute(select(func.count()).select_from(Embedding)).scalar_one(),
        }
    by_format: dict[str, Counter[str]] = defaultdict(Counter)
    for f in files:
        by_format[f["format"]].update({"files": 1, f["status"]: 1, "records": f["records"]["found"]})
    errors_by_stage = Counter(r["stage"] for r in rejections)
    errors_by_type = Counter(error_type(r["reason"]) for r in rejections)
    errors_by_type.update(error_type(f["reason"]) for f in files if f["status"] == "rejected" and f["reason"] and f["records"]["found"] == 0)
    started, finished = run["started_at"], run["finished_at"]
    backup_dir = Path((run["config"] or {}).get("backup_directory") or ".")
    rollback_file = backup_dir / "backups" / run_id / "rollback_info.json"
    backup = {
        "rollback_file": str(rollback_file) if rollback_file.exists() else None,
        "files": [{"path": b["path"], "sha256": b["sha256"], "size": b["size"], "rows": b["rows"], "encrypted": b["encrypted"]} for b in backup_rows],
    }
    elapsed = (finished - started).total_seconds() if started and finished else None
    throughput = (
        {
            "seconds": round(elapsed, 3),
            "files_per_minute": round(len(files) * 60 / elapsed) if elapsed else None,
            "records_per_second": round(totals["records"]["found"] / elapsed) if elapsed else None,
        }
        if elapsed is not None
        else {}
    )
    return {
        "run_id": run_id,
        "status": run["status"],
        "dry_run": run["dry_run"],
        "source_directory": run["source_directory"],
        "partition_key": run["partition_key"],
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
        "config": run["config"],
        "totals": totals,
        "in_target": in_target,
        "by_format": {fmt: dict(c) for fmt, c in sorted(by_format.items())},
        "errors_by_stage": dict(errors_by_stage),
        "errors_by_type": dict(errors_by_type.most_common()),
        "backup": backup,
        "stages": run["stats"],
        "throughput": throughput,
        "wave": {
            "partition_keys": keys,
            "mode": sorted({w["mode"] for w in waves}),
            "unchanged_files_not_in_wave": sum(w["unchanged_count"] for w in waves),
            "removed_files": sorted({path for w in waves for path in w["removed"]}),
        },
        "integrity": results_of_run(engine, run_id),
        "rules": run["rules"],
        "by_rule": count_by_rule((r["rules"] for r in rejections), (w["rules"] for w in warnings)),
        "validation_warnings": warnings,
        "files": files,
        "rejected_records": [rejection_entry(r) for r in rejections],
    }


def _by_rule_lines(by_rule: dict[str, dict[str, int]]) -> list[str]:
    if not by_rule:
        return []
    return ["", "By rule (records rejected / loaded with a warning):"] + [
        f"  {rule:<24} {counts['rejected']:>6} rejected  {counts['warned']:>6} warned" for rule, counts in by_rule.items()
    ]


def render_summary(report: dict[str, Any]) -> str:
    totals, records = report["totals"], report["totals"]["records"]
    lines = [
        f"Migration run {report['run_id']}: {report['status']}" + (" (dry run: nothing written)" if report["dry_run"] else ""),
        f"Source: {report['source_directory']}",
        f"Started {report['started_at']}, finished {report['finished_at']}",
        "",
        f"Wave {', '.join(report['wave']['partition_keys'])} ({', '.join(report['wave']['mode'])}): "
        f"{report['wave']['unchanged_files_not_in_wave']} unchanged files left out, {len(report['wave']['removed_files'])} removed from the source",
        f"Files: {totals['files']} discovered = {totals['migrated']} migrated + {totals['skipped']} skipped + {totals['rejected']} rejected",
        f"Records: {records['found']} found = {records['inserted']} inserted + {records['updated']} updated"
        f" + {records['unchanged']} unchanged + {records['rejected']} rejected",
        f"In the target now: {report['in_target']['content_items']} content items, "
        f"{report['in_target']['knowledge_items']} knowledge items, {report['in_target']['embeddings']} embeddings",
        "",
        "By format:",
    ]
    for fmt, counts in report["by_format"].items():
        lines.append(f"  {fmt:<10} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    stages = report.get("stages") or {}
    if stages:
        lines += ["", "Stages:"]
        for name, figures in stages.items():
            if not isinstance(figures, dict):
                continue
            detail = ", ".join(f"{k} {v}" for k, v in figures.items() if k != "seconds" and not isinstance(v, dict))
            lines.append(f"  {name:<18} {figures.get('seconds', 0):>8.2f} s  {detail}")
    if report.get("backup", {}).get("rollback_file"):
        lines.append(f"\nBackup: {len(report['backup']['files'])} journal files; undo this run with")
        lines.append(f"  python -m migration_assets.cli rollback --rollback-file {report['backup']['rollback_file']} --confirm")
    rules = report.get("rules") or {}
    lines.append(f"\nRules: {rules.get('file') or 'the built-in defaults'} (hash {str(rules.get('hash') or 'not recorded')[:12]})")
    lines += _by_rule_lines(report.get("by_rule") or {})
    if report.get("errors_by_type"):
        lines += ["", "Errors by type:"] + [f"  {n:>6}  {kind}" for kind, n in report["errors_by_type"].items()]
    if isinstance(stages.get("peak_rss_mb"), (int, float)):
        lines.append(f"Peak memory: {stages['peak_rss_mb']} MB")
    throughput = report.get("throughput") or {}
    if throughput:
        lines.append(f"Throughput: {throughput['files_per_minute']} files/minute, {throughput['records_per_second']} records/s")
    if report.get("integrity"):
        lines += ["", "Integrity checks:"]
        for check in report["integrity"]:
            verdict = "passed" if check["passed"] else ("FAILED" if check["severity"] == "ERROR" else "warning")
            lines.append(f"  {check['check']:<18} {verdict:<8} {check['message']}")
    if report.get("validation_warnings"):
        lines.append(f"\nValidation warnings (records loaded with a warning): {len(report['validation_warnings'])}")
    problems = [f for f in report["files"] if f["status"] != "migrated" or f["reason"]]
    if problems:
        lines += ["", "Files not (fully) migrated:"]
        lines += [f"  [{f['status']}] {f['path']}: {f['reason']}" for f in problems]
    return "\n".join(lines) + "\n"


REPORTS_DIR = "reports"


def run_report_dir(backup_directory: Path, run_id: str) -> Path:
    """Where a run's own report and summary are kept: ``<backups>/reports/<run id>/``."""
    return backup_directory / REPORTS_DIR / run_id


def write_report(report: dict[str, Any], backup_directory: Path) -> tuple[Path, Path]:
    """Write a run's report and summary into its own folder (``run_report_dir``) and copy them
    beside it as the latest (``<backups>/migration_report.json``, ``migration_summary.txt``);
    returns the run's own paths."""
    folder = run_report_dir(backup_directory, str(report["run_id"])) if report.get("run_id") else backup_directory
    folder.mkdir(parents=True, exist_ok=True)
    report_path = folder / REPORT_FILE
    summary_path = folder / SUMMARY_FILE
    with open(report_path, "w", encoding="utf-8") as fh:  # streamed: a report of every file is large
        json.dump(report, fh, indent=2, ensure_ascii=False, default=str)
    summary_path.write_text(render_summary(report), encoding="utf-8")
    if folder != backup_directory:
        for path in (report_path, summary_path):
            replace_file(path.read_bytes(), backup_directory / path.name)
    return report_path, summary_path


def validation_report(inventory: FileInventory, validated: ValidatedRecords, rules: MigrationRules) -> dict[str, Any]:
    """What ``validate`` found under ``rules``: per-format counts, every invalid file and record
    with its reasons and the rules it breaks, every record that would load with a warning, and
    the counts per rule."""
    by_format: dict[str, Counter[str]] = defaultdict(Counter)
    invalid_files: list[dict[str, Any]] = []
    invalid_records: list[dict[str, Any]] = []
    warned_records: list[dict[str, Any]] = []
    skipped_files: list[dict[str, Any]] = []
    for source in inventory.files:
        by_format[source.format]["files"] += 1
        if not source.eligible:
            by_format[source.format]["skipped_files"] += 1
            skipped_files.append({"path": source.rel_path, "format": source.format, "status": source.status.value, "reason": source.reason})
    for files in validated.batches():
        for load in files:
            counts = by_format[load.source.format]
            if load.parsed.error:
                counts["invalid_files"] += 1
                invalid_files.append({"path": load.source.rel_path, "format": load.source.format, "reason": load.parsed.error})
                continue
            bad: list[dict[str, Any]] = [
                {"path": r.source_path, "index": r.record_index, "legacy_id": r.legacy_id, "reasons": [r.reason], "rules": [], "stage": "parse"}
                for r in load.parsed.rejections
            ]
            bad += [_record_entry(r, load.invalid[r.record_index], "validate") for r in load.parsed.records if r.record_index in load.invalid]
            warned = [_record_entry(r, load.warnings[r.record_index], "validate") for r in load.parsed.records if r.record_index in load.warnings]
            counts["warned_records"] += len(warned)
            warned_records += warned
            counts["records"] += len(load.parsed.records) + len(load.parsed.rejections)
            counts["invalid_records"] += len(bad)
            counts["valid_records"] += len(load.parsed.records) + len(load.parsed.rejections) - len(bad)
            invalid_records += bad
            if bad and len(bad) == len(load.parsed.records) + len(load.parsed.rejections):
                counts["invalid_files"] += 1
                invalid_files.append(
                    {"path": load.source.rel_path, "format": load.source.format, "reason": f"all {len(bad)} records invalid: {bad[0]['reasons'][0]}"}
                )
            else:
                counts["valid_files"] += 1
    totals: Counter[str] = Counter()
    for counts in by_format.values():
        totals.update(counts)
    return {
        "source_directory": inventory.root,
        "totals": dict(totals),
        "by_format": {fmt: dict(c) for fmt, c in sorted(by_format.items())},
        "rules": rules.summary(),
        "by_rule": count_by_rule((r["rules"] for r in invalid_records), (r["rules"] for r in warned_records)),
        "invalid_files": invalid_files,
        "invalid_records": invalid_records,
        "warned_records": warned_records,
        "skipped_files": skipped_files,
    }


def _record_entry(record: Any, violations: list[Any], stage: str) -> dict[str, Any]:
    return {
        "path": record.source_path,
        "index": record.record_index,
        "legacy_id": record.legacy_id,
        "reasons": [v.message for v in violations],
        "rules": [v.rule for v in violations],
        "stage": stage,
    }


def dry_run_report(
    config: Any, inventory: FileInventory, counts: Any, skipped: list[str], prune: int, seconds: float, rules: MigrationRules
) -> dict[str, Any]:
    """The report of a dry run, in the shape of a real run's, with the planned counts."""
    files: list[dict[str, Any]] = [
        {"path": s.rel_path, "format": s.format, "status": status, "reason": s.reason, "records": dict.fromkeys(RECORD_KEYS, 0)}
        for s, status in zip([f for f in inventory.files if not f.eligible], skipped, strict=True)
    ]
    files += [
        {
            "path": i["source_path"],
            "format": i["source_format"],
            "status": i["status"],
            "reason": i["reason"],
            "records": {k: i[f"records_{k}"] for k in RECORD_KEYS},
        }
        for i in counts.planned_items
    ]
    files.sort(key=lambda f: f["path"])
    status_counts = Counter(f["status"] for f in files)
    found = sum(f["records"]["found"] for f in files)
    return {
        "run_id": None,
        "status": "dry_run",
        "dry_run": True,
        "source_directory": inventory.root,
        "config": config.model_dump(),
        "plan": {"insert": counts.inserted, "update": counts.updated, "unchanged": counts.unchanged, "reject": counts.rejected, "prune": prune},
        "totals": {
            "files": len(files),
            **{status: status_counts.get(status, 0) for status in FILE_STATUSES},
            "records": {
                "found": found,
                "inserted": counts.inserted,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": counts.rejected,
            },
        },
        "wave": {"unchanged_files_not_in_wave": inventory.unchanged_count, "removed_files": inventory.removed},
        "seconds": round(seconds, 3),
        "rules": rules.summary(),
        "by_rule": count_by_rule((r["rules"] for r in counts.planned_rejections), (w["rules"] for w in counts.planned_warnings)),
        "files": files,
        "rejected_records": [rejection_entry(r) for r in counts.planned_rejections],
        "warned_records": [warning_entry(w) for w in counts.planned_warnings],
    }


def render_dry_run(report: dict[str, Any]) -> str:
    plan, totals = report["plan"], report["totals"]
    lines = [
        f"Dry run of {report['source_directory']}: nothing was written to the target.",
        f"Files: {totals['files']} = {totals['migrated']} would migrate + {totals['skipped']} skipped + {totals['rejected']} rejected"
        f" ({report['wave']['unchanged_files_not_in_wave']} unchanged left out, {len(report['wave']['removed_files'])} removed)",
        f"Records: {plan['insert']} to insert, {plan['update']} to update, {plan['unchanged']} unchanged, {plan['reject']} to reject;"
        f" {plan['prune']} to prune",
        f"Rules: {report['rules']['file'] or 'the built-in defaults'} (hash {report['rules']['hash'][:12]})",
    ]
    lines += _by_rule_lines(report.get("by_rule") or {})
    problems = [f for f in report["files"] if f["status"] != "migrated" or f["reason"]]
    if problems:
        lines += ["", "Files not (fully) migrated:"] + [f"  [{f['status']}] {f['path']}: {f['reason']}" for f in problems]
    return "\n".join(lines) + "\n"
