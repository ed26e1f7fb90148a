"""Record batches handed from one stage to the next through files, never held whole in memory.

A stage writes numbered batch files into a run-scoped folder and hands on a small
``StagedBatches`` handle; the next stage streams the batches back one at a time.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGING_FOLDER = ".staging"


def staging_dir(backup_directory: Path, run_id: str, stage: str) -> Path:
    return backup_directory / STAGING_FOLDER / run_id / stage


def write_batch(directory: Path, batch_no: int, batch: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return write_file(directory / f"batch-{batch_no:06d}.pickle", batch)


def write_file(path: Path, value: Any) -> Path:
    """Stage ``value`` at ``path``, atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return path


def read_batch(path: str | Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - our own files, written by write_batch
    except FileNotFoundError:
        raise FileNotFoundError(
            f"staged batch {path} is gone (staging is cleaned after a successful run); re-materialize the upstream assets"
        ) from None


@dataclass
class StagedBatches:
    """A handle to the batch files one stage wrote, in order, with summary counts; read each
    with ``read_batch``."""

    directory: str
    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)
