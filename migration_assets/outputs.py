"""Where commands write (backups, reports, exports): each folder proved writable before the work
that would fill it starts, so that a bad path costs a second, not a migration."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class OutputNotWritable(ValueError):
    """A folder a command must write into cannot be written: said before any work is done."""


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove it takes a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise OutputNotWritable(f"{folder} cannot be written: {exc.strerror or exc}") from None


def replace_file(data: bytes, target: Path) -> None:
    """Write ``target`` whole or not at all, through a temporary file of this writer's own
    (waves ending at once each write the latest copy; the last one wins, none is torn)."""
    fd, scratch = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(scratch, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise
