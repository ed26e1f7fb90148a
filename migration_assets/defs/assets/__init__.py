"""Dagster assets: thin functions that call the service layer and report what happened.

One group for all of them; their owner and tags are written here once."""

from collections.abc import Mapping

GROUP = "migration"
OWNERS = ["team:data-platform"]
SOURCE_TAGS = {"layer": "legacy-source"}  # what is read and checked from the legacy store
TARGET_TAGS = {"layer": "target"}  # tables of the unified target database

GROUP_TAG = "migration/group"  # the runs of one `migrate --waves K`
BACKFILL_TAG = "dagster/backfill"  # the runs of one backfill launched in the UI


def run_group(tags: Mapping[str, str]) -> str | None:
    """The group a run's tags put it in: its waves' group, or the backfill that requested it."""
    return tags.get(GROUP_TAG) or tags.get(BACKFILL_TAG)
