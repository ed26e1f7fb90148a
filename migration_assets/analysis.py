"""Phase 1 of a migration: what a source holds and what migrating it will take, without migrating it.

Every file is listed and hashed (formats, extensions, sizes, files that will be skipped and why,
identical files); a sample of them is migrated into a scratch SQLite target on this machine, to
estimate records, encodings, time and target size — said as estimates, with their basis.
Writes nothing but the caller's output. Plain Python, no Dagster.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from migration_assets.config import MigrationConfig
from migration_assets.inventory import FileInventory, SourceDirectoryError
from migration_assets.sources.discovery import SourceFile, scan_source

SAMPLE_FILES = 240
SAMPLE_BYTES = 12 * 1024 * 1024
STARTUP_SECONDS = (2.0, 4.0)
"""What a migration spends before and after its files (imports, the Dagster run, checks, the
report) on a two-core machine, measured: added to the estimate as a range."""

Progress = Callable[[int, int | None], None]


def pick_sample(files: list[SourceFile]) -> list[SourceFile]:
    """Eligible files spread evenly over every format (sorted by path, a stride through each), at
    most ``SAMPLE_FILES`` and about ``SAMPLE_BYTES``."""
    by_format: dict[str, list[SourceFile]] = defaultdict(list)
    for source in files:
        if source.eligible:
            by_format[source.format].append(source)
    share = max(1, SAMPLE_FILES // max(1, len(by_format)))
    sample: list[SourceFile] = []
    for found in by_format.values():
        stride = max(1, len(found) // share)
        sample += found[::stride][:share]
    sample.sort(key=lambda f: f.rel_path)
    kept: list[SourceFile] = []
    size = 0
    for source in sample:
        if kept and size + source.size > SAMPLE_BYTES:
            continue
        kept.append(source)
        size += source.size
    return kept


def analyze_source(config: MigrationConfig, on_progress: Progress | None = None) -> dict[str, Any]:
    """The analysis of ``config.source_directory`` (see the module's docstring)."""
    root = config.source_path
    if not root.is_dir():
        raise SourceDirectoryError(f"source directory {root} does not exist or is not a folder")
    files: list[SourceFile] = []
    for source in scan_source(root, max_file_size=config.max_file_size, skip_large_files=True):
        files.append(source)
        if on_progress and len(files) % 250 == 0:
            on_progress(len(files), None)
    if on_progress:
        on_progress(len(files), len(files))
    sample = pick_sample(files)
    measured = _migrate_sample(config, root, sample)
    eligible = [f for f in files if f.eligible]
    by_format: dict[str, dict[str, Any]] = {}
    for fmt in sorted({f.format for f in files}):
        of_format = [f for f in files if f.format == fmt]
        usable = [f for f in of_format if f.eligible]
        sampled = measured["by_format"].get(fmt)
        per_file = sampled["records"] / sampled["files"] if sampled and sampled["files"] else 0.0
        by_format[fmt] = {
            "files": len(of_format),
            "bytes": sum(f.size for f in of_format),
            "eligible": len(usable),
            "skipped": len(of_format) - len(usable),
            "records_estimate": round(per_file * len(usable)),
            "records_per_file_in_sample": round(per_file, 2),
            "encodings_in_sample": dict(sampled["encodings"]) if sampled else {},
            "files_rejected_in_sample": sampled["rejected_files"] if sampled else 0,
        }
    extensions = Counter(Path(f.rel_path).suffix.lower() or "(none)" for f in files)
    largest = max(files, key=lambda f: f.size, default=None)
    over = [f for f in files if f.size > config.max_file_size]
    groups: dict[str, list[str]] = defaultdict(list)
    for source in eligible:
        if source.sha256:
            groups[source.sha256].append(source.rel_path)
    duplicates = [paths for paths in groups.values() if len(paths) > 1]
    eligible_bytes = sum(f.size for f in eligible)
    scale = eligible_bytes / measured["bytes"] if measured["bytes"] else 0.0
    seconds = measured["seconds"] * scale
    return {
        "source_directory": str(root),
        "totals": {
            "files": len(files),
            "bytes": sum(f.size for f in files),
            "eligible": len(eligible),
            "eligible_bytes": eligible_bytes,
            "skipped": len(files) - len(eligible),
            "records_estimate": sum(n["records_estimate"] for n in by_format.values()),
        },
        "by_format": by_format,
        "by_extension": dict(extensions.most_common()),
        "sizes": {
            "total_bytes": sum(f.size for f in files),
            "largest": {"path": largest.rel_path, "bytes": largest.size} if largest else None,
            "over_max_file_size": {"limit": config.max_file_size, "files": len(over), "paths": [f.rel_path for f in over][:100]},
        },
        "skipped_files": [{"path": f.rel_path, "format": f.format, "status": f.status.value, "reason": f.reason} for f in files if not f.eligible],
        "duplicates": {"groups": len(duplicates), "files": sum(len(g) for g in duplicates), "examples": sorted(duplicates)[:20]},
        "sample": {k: measured[k] for k in ("files", "bytes", "records", "seconds", "target_bytes")},
        "estimate": {
            "seconds_low": round(seconds * 0.8 + STARTUP_SECONDS[0], 1),
            "seconds_high": round(seconds * 1.5 + STARTUP_SECONDS[1], 1),
            "target_mb": round(measured["target_bytes"] * scale / 2**20, 1),
            "basis": (
                f"an estimate: {measured['files']} files ({measured['bytes'] / 2**20:.1f} MB) of this source migrated into a scratch SQLite "
                f"target on this machine in {measured['seconds']:.2f} s, serially, with the default embedder, scaled by bytes to "
                f"{eligible_bytes / 2**20:.1f} MB; --parallel and PostgreSQL change it"
            ),
        },
    }


def _migrate_sample(config: MigrationConfig, root: Path, sample: list[SourceFile]) -> dict[str, Any]:
    """Migrate ``sample`` into a scratch SQLite target: what it held, how long it took, how much
    the target grew. Nothing outside a temporary folder is written."""
    from sqlalchemy import select

    from migration_assets import service
    from migration_assets.embeddings import get_provider
    from migration_assets.store.database import dispose_engine, get_engine
    from migration_assets.store.runs import start_run
    from migration_assets.store.tables import ITEMS

    measured: dict[str, Any] = {"files": len(sample), "bytes": sum(f.size for f in sample), "records": 0, "seconds": 0.0, "by_format": {}}
    with tempfile.TemporaryDirectory(prefix="migration-analyze-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'sample.db'}"
        engine = get_engine(url)
        empty = (Path(scratch) / "sample.db").stat().st_size
        scratch_config = config.model_copy(update={"backup_directory": scratch, "create_backups": False})
        start_run(engine, "analyze-sample", source_directory=str(root), config=scratch_config.model_dump())
        started = time.perf_counter()
        service.ingest_stage(
            engine, "analyze-sample", scratch_config, FileInventory(str(root), sample), service.derivation_for(scratch_config, get_provider)
        )
        measured["seconds"] = time.perf_counter() - started
        with engine.connect() as conn:
            rows = conn.execute(select(ITEMS.c.source_format, ITEMS.c.encoding, ITEMS.c.status, ITEMS.c.records_found)).all()
        dispose_engine(url)
        measured["target_bytes"] = (Path(scratch) / "sample.db").stat().st_size - empty
    for fmt, encoding, status, found in rows:
        counts = measured["by_format"].setdefault(fmt, {"files": 0, "records": 0, "rejected_files": 0, "encodings": Counter()})
        counts["files"] += 1
        counts["records"] += found or 0
        counts["rejected_files"] += status == "rejected"
        if encoding:
            counts["encodings"][encoding] += 1
        measured["records"] += found or 0
    return measured
