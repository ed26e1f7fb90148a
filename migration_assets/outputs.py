"""Where commands write (backups, reports, exports): each folder proved writable before the work
that would fill it starts, so that a bad path costs a second, not a migration."""

from __future__ import annotations

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
