"""The Dagster layer, thin and declarative: assets, asset checks, jobs, schedules, sensors,
resources, the waves partitions and the instance storage. Everything here calls the plain
Python modules of ``migration_assets`` (service, store, validation, embeddings, ...), which
know nothing of Dagster; ``migration_assets/definitions.py`` assembles it into the code location."""
