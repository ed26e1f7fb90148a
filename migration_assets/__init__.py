"""migration-assets: a legacy content store migrated into one relational database, as Dagster assets."""

__version__ = "0.1.0"
