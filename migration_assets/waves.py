"""Incremental planning: which files are new, changed, drifted, unchanged or removed, and the
waves (partitions) that carry new work.

A wave is a bounded set of source files discovered together; its file list is fixed when it
is planned, so a partition re-materialized or retried processes exactly its own files.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, exists, inspect, select, union, update

from migration_assets.config import MigrationConfig
from migration_assets.integrity import drifted_files
from migration_assets.inventory import FileInventory, SourceDirectoryError
from migration_assets.rules import MigrationRules
from migration_assets.sources.discovery import Fingerprints, SourceFile, scan_paths, scan_source
from migration_assets.store.models import MigrationWave, utcnow
from migration_assets.store.runs import latest_items
from migration_assets.store.tables import ITEMS, REJECTED, RUNS, WARNINGS, WAVES


@dataclass(frozen=True)
class TrackedFile:
    """A file's latest fingerprint and outcome, from the tracking tables."""

    path: str
    size: int
    mtime: float
    sha256: str | None
    status: str
    run_id: str
    load_rejections: bool = False  # records refused by the target last time: try them again


def tracked_files(engine: Engine, source_root: str) -> dict[str, TrackedFile]:
    """The latest tracked state of every file of ``source_root`` (dry and rolled-back runs ignored)."""
    if not inspect(engine).has_table(ITEMS.name):
        return {}  # a target nothing was migrated to yet
    latest = latest_items(source_root)
    refused = (
        exists()
        .where(REJECTED.c.run_id == ITEMS.c.run_id, REJECTED.c.source_path == ITEMS.c.source_path, REJECTED.c.stage == "load")
        .label("load_rejections")
    )
    columns = (ITEMS.c.source_path, ITEMS.c.size, ITEMS.c.mtime, ITEMS.c.sha256, ITEMS.c.status, ITEMS.c.run_id, refused)
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).join(latest, latest.c.id == ITEMS.c.id)).all()
    return {row.source_path: TrackedFile(*row) for row in rows if row.status != "removed"}


@dataclass(frozen=True)
class RulesChange:
    """What changed in the rules since the runs that last migrated a source's files: the runs whose
    field mapping differs from the current one (their files are remapped), and the (run, file)
    pairs whose records were rejected or warned under other validation rules (re-evaluated).
    A run from before rules were recorded counts as having other rules."""

    remapped_runs: frozenset[str] = frozenset()
    reevaluated: frozenset[tuple[str, str]] = frozenset()


def rules_change(engine: Engine, tracked: dict[str, TrackedFile], rules: MigrationRules) -> RulesChange:
    run_ids = sorted({t.run_id for t in tracked.values()})
    ran_under: dict[str, dict[str, str] | None] = {}
    flagged: set[tuple[str, str]] = set()
    recorded = bool(run_ids) and any(c["name"] == "rules" for c in inspect(engine).get_columns(RUNS.name))  # a target not yet upgraded: none
    with engine.connect() as conn:
        for chunk in _chunks(run_ids if recorded else []):
            ran_under.update(conn.execute(select(RUNS.c.id, RUNS.c.rules).where(RUNS.c.id.in_(chunk))).tuples().all())
        remapped = frozenset(run for run in run_ids if (ran_under.get(run) or {}).get("mapping_hash") != rules.mapping_hash)
        revalidated = [run for run in run_ids if (ran_under.get(run) or {}).get("validation_hash") != rules.validation_hash and run not in remapped]
        for chunk in _chunks(revalidated):
            findings = union(
                select(REJECTED.c.run_id, REJECTED.c.source_path).where(REJECTED.c.run_id.in_(chunk), REJECTED.c.stage == "validate"),
                select(WARNINGS.c.run_id, WARNINGS.c.source_path).where(WARNINGS.c.run_id.in_(chunk)),
            )
            flagged.update(conn.execute(findings).tuples().all())
    return RulesChange(remapped, frozenset(flagged))


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def fingerprints(tracked: dict[str, TrackedFile]) -> Fingerprints:
    return {path: (t.size, t.mtime, t.sha256) for path, t in tracked.items()}


def same_file(now: SourceFile, before: TrackedFile) -> bool:
    if now.sha256 and before.sha256:
        return now.sha256 == before.sha256
    return (now.size, now.mtime) == (before.size, before.mtime) and now.sha256 == before.sha256


@dataclass
class IncrementalPlan:
    """A source directory compared with what was migrated from it."""

    root: str
    new: list[SourceFile] = field(default_factory=list)
    changed: list[SourceFile] = field(default_factory=list)
    drifted: list[SourceFile] = field(default_factory=list)
    unchanged: list[SourceFile] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    pending: list[SourceFile] = field(default_factory=list)  # in waves planned but not yet migrated
    refused: list[SourceFile] = field(default_factory=list)  # unchanged, but the target refused records
    reevaluate: list[SourceFile] = field(default_factory=list)  # unchanged, but records rejected or warned under other rules
    remapped: list[SourceFile] = field(default_factory=list)  # unchanged, but migrated under another field mapping

    @property
    def to_migrate(self) -> list[SourceFile]:
        return sorted(self.new + self.changed + self.drifted + self.reevaluate + self.remapped, key=lambda f: f.rel_path)

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "changed": len(self.changed),
            "drifted": len(self.drifted),
            "unchanged": len(self.unchanged),
            "removed": len(self.removed),
            "pending": len(self.pending),
            "refused": len(self.refused),
            "reevaluate": len(self.reevaluate),
            "remapped": len(self.remapped),
        }


def open_wave_files(engine: Engine, source_root: str) -> set[str]:
    if not inspect(engine).has_table(WAVES.name):
        return set()
    with engine.connect() as conn:
        lists = conn.execute(select(WAVES.c.files).where(WAVES.c.source_root == source_root, WAVES.c.status == "planned")).scalars()
        return {path for files in lists for path in files}


def check_source(config: MigrationConfig) -> str:
    root = config.source_path
    if not root.is_dir():
        raise SourceDirectoryError(f"source directory {root} does not exist or is not a folder")
    return str(root)


def plan_incremental(engine: Engine, config: MigrationConfig, *, hash_new: bool = True, rules: MigrationRules | None = None) -> IncrementalPlan:
    """Compare the source with its tracked fingerprints; unchanged files are recognised from size
    and mtime without being read. Without ``hash_new``, new files are not read either (a wave
    only lists them; its run fingerprints them). An unchanged file is migrated again when the
    rules changed since (``rules_change``; ``rules``: the config's when None). Writes nothing."""
    root = check_source(config)
    rules = rules or config.load_rules()
    tracked = tracked_files(engine, root)
    change = rules_change(engine, tracked, rules)
    drifted = {d["path"] for d in drifted_files(engine, root)}
    pending = open_wave_files(engine, root)
    plan = IncrementalPlan(root)
    seen: set[str] = set()
    scan = scan_source(
        config.source_path,
        max_file_size=config.max_file_size,
        skip_large_files=config.skip_large_files,
        known=fingerprints(tracked),
        hash_new=hash_new,
    )
    for source in scan:
        seen.add(source.rel_path)
        before = tracked.get(source.rel_path)
        if source.rel_path in pending:
            plan.pending.append(source)
        elif before is None:
            plan.new.append(source)
        elif source.rel_path in drifted:
            plan.drifted.append(source)
        elif source.eligible and before.run_id in change.remapped_runs and same_file(source, before):
            plan.remapped.append(source)  # the field mapping changed: its records may too
        elif (before.run_id, source.rel_path) in change.reevaluated and same_file(source, before):
            plan.reevaluate.append(source)  # the validation rules changed: what they rejected or warned may now pass
        elif before.load_rejections and same_file(source, before):
            # records the target refused (an id held by another file, say): the outcome depended
            # on the target, not on the file, so a CLI or full run tries them again
            plan.refused.append(source)
        elif same_file(source, before):
            plan.unchanged.append(source)
        else:
            plan.changed.append(source)
    plan.removed = sorted(path for path in tracked if path not in seen)
    return plan


def new_wave_key(mode: str, now: dt.datetime | None = None) -> str:
    """Readable, sortable and unique across processes: ``20261125-113400-incremental-3f9a1c``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%d-%H%M%S}-{mode}-{uuid.uuid4().hex[:6]}"


def plan_waves(
    engine: Engine,
    config: MigrationConfig,
    *,
    max_files: int | None = None,
    count: int | None = None,
    key: str | None = None,
    adopt_pending: bool = False,
) -> list[MigrationWave]:
    """Plan and record the waves that carry the source's new work.

    ``config.incremental``: new, changed and drifted files not already in a pending wave (with
    ``adopt_pending``, those too: the CLI takes over waves whose run died, say). Otherwise: every
    file of the source. Waves whose files are taken over are marked ``superseded``.
    ``max_files`` bounds a wave; ``count``: as many waves of about equal size (fewer when there
    are fewer files), to run at once; ``key`` names the (single) wave, as when a partition was
    added by hand in the UI. Files removed from the source (and the count of unchanged ones)
    belong to the first wave only: pruned and reported once.
    """
    plan = plan_incremental(engine, config, hash_new=False)
    adopted = sorted(f.rel_path for f in plan.pending) if (adopt_pending or not config.incremental) else []
    if config.incremental:
        # the sensor leaves refused files alone (they would make a wave a minute); the CLI retries them
        retried = [f.rel_path for f in plan.refused] if adopt_pending else []
        files = sorted([f.rel_path for f in plan.to_migrate] + adopted + retried)
        mode = "incremental"
    else:
        files = sorted(f.rel_path for f in plan.new + plan.changed + plan.drifted + plan.unchanged + plan.pending + plan.refused)
        mode = "full"
    if not files and key is None and not (config.prune_removed and plan.removed):
        return []  # nothing to migrate, and nothing removed that we were asked to prune
    size = max_files if key is None and max_files else max(len(files), 1)
    if key is None and count and count > 1:
        size = max(-(-len(files) // count), 1)  # ceil: `count` waves at most, none empty
    chunks = [files[i : i + size] for i in range(0, len(files), size)] or [[]]
    unchanged = len(plan.unchanged) + (0 if adopt_pending else len(plan.refused)) if mode == "incremental" else 0
    waves = [
        MigrationWave(
            partition_key=key or new_wave_key(mode),
            source_root=plan.root,
            mode=mode,
            status="planned",
            files=chunk,
            file_count=len(chunk),
            unchanged_count=unchanged if first else 0,
            removed=plan.removed if first else [],
            created_at=utcnow(),
        )
        for first, chunk in zip([True] + [False] * (len(chunks) - 1), chunks, strict=True)
    ]
    planned_columns = [c.key for c in WAVES.columns if c.key not in ("completed_at", "run_id")]
    with engine.begin() as conn:
        if adopted:
            conn.execute(update(WAVES).where(WAVES.c.source_root == plan.root, WAVES.c.status == "planned").values(status="superseded"))
        for wave in waves:
            conn.execute(WAVES.insert().values({name: getattr(wave, name) for name in planned_columns}))
    return waves


def get_waves(engine: Engine, keys: Sequence[str]) -> list[MigrationWave]:
    with engine.connect() as conn:
        rows = conn.execute(select(WAVES).where(WAVES.c.partition_key.in_(list(keys)))).mappings().all()
    return [MigrationWave(**dict(row)) for row in rows]


def ensure_waves(engine: Engine, config: MigrationConfig, keys: Sequence[str]) -> list[MigrationWave]:
    """The waves behind these partition keys; a key nobody planned (added by hand in the UI) is
    planned now from the source as it is, and kept, so re-running it is stable."""
    known = {w.partition_key: w for w in get_waves(engine, keys)}
    for key in keys:
        if key not in known:
            known[key] = plan_waves(engine, config, key=key)[0]
    return [known[key] for key in keys]


def wave_inventory(config: MigrationConfig, engine: Engine, waves: Sequence[MigrationWave]) -> FileInventory:
    """The files of the waves as they are now. Nothing is read here: an unchanged file keeps its
    fingerprint, and the others are hashed by the parse, which reads them anyway."""
    root = check_source(config)
    if any(w.source_root != root for w in waves):
        others = sorted({w.source_root for w in waves} - {root})
        raise SourceDirectoryError(f"waves {[w.partition_key for w in waves]} belong to {others}, not to the configured source {root}")
    paths = sorted({path for wave in waves for path in wave.files})
    known = fingerprints(tracked_files(engine, root))
    files = list(
        scan_paths(
            config.source_path, paths, max_file_size=config.max_file_size, skip_large_files=config.skip_large_files, known=known, hash_new=False
        )
    )
    removed = sorted({path for wave in waves for path in wave.removed})
    return FileInventory(root, files, unchanged_count=sum(w.unchanged_count for w in waves), removed=removed)


def finish_waves(engine: Engine, keys: Sequence[str], run_id: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(WAVES).where(WAVES.c.partition_key.in_(list(keys))).values(status=status, run_id=run_id, completed_at=utcnow()))
