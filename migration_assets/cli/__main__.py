"""``python -m migration_assets.cli``."""

from migration_assets.cli import main

main()
