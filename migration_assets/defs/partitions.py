"""Partitions: waves of source files discovered together (see ``waves.py``).

Dynamic partitions, one per wave, never one per file: the UI shows which waves are
materialized, missing or failed, and a failed wave is retried alone.
"""

import dagster as dg

WAVES = "waves"
waves_partitions = dg.DynamicPartitionsDefinition(name=WAVES)
