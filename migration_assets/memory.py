"""How much memory this process has used: the figure every stage and worker reports."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
