"""The REST API: ``create_app`` builds it; ``python -m migration_assets.api`` serves it."""

from migration_assets.api.app import create_app

__all__ = ["create_app"]
