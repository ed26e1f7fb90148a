"""Dagster assets: thin functions that call the service layer and report what happened.

One group for all of them; their owner and tags are written here once."""

GROUP = "migration"
OWNERS = ["team:data-platform"]
SOURCE_TAGS = {"layer": "legacy-source"}  # what is read and checked from the legacy store
TARGET_TAGS = {"layer": "target"}  # tables of the unified target database
