"""The code location's assets, listed once: the definitions and the tests use this list."""

import dagster as dg

from migration_assets.defs.assets import legacy, target

ASSETS = dg.load_assets_from_modules([legacy, target])
