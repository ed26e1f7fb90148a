"""The inventory of a source directory for one run: every file found, and which are eligible."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from migration_assets.config import MigrationConfig
from migration_assets.sources.discovery import FileStatus, SourceFile, scan_source


@dataclass
class FileInventory:
    """What a run found under its source directory."""

    root: str
    files: list[SourceFile] = field(default_factory=list)
    unchanged_count: int = 0  # incremental: files left out because nothing changed
    removed: list[str] = field(default_factory=list)  # tracked files no longer in the source

    @property
    def eligible(self) -> list[SourceFile]:
        return [f for f in self.files if f.eligible]

    def counts(self) -> dict[str, int]:
        by_status = Counter(f.status.value for f in self.files)
        return {"files": len(self.files), **{s.value: by_status.get(s.value, 0) for s in FileStatus}}

    def formats(self) -> dict[str, int]:
        return dict(sorted(Counter(f.format for f in self.files).items()))

    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class SourceDirectoryError(ValueError):
    """The source directory cannot be migrated at all (missing, not a folder)."""


def take_inventory(config: MigrationConfig) -> FileInventory:
    root = config.source_path
    if not root.exists():
        raise SourceDirectoryError(f"source directory {root} does not exist")
    if not root.is_dir():
        raise SourceDirectoryError(f"source directory {root} is not a folder")
    files = list(scan_source(root, max_file_size=config.max_file_size, skip_large_files=config.skip_large_files))
    return FileInventory(str(root), files)
