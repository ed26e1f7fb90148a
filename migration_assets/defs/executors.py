"""The executor of the code location's jobs, chosen where it is deployed by ``MIGRATION_EXECUTOR``.

Unset (or ``in_process``), every step runs in the run's own process, as the CLI and ``dagster dev``
run them; ``multiprocess`` gives each step a process; ``docker`` a container (dagster-docker) and
``k8s`` a Kubernetes Job (dagster-k8s), from the code location's image. A step in a container or
pod of its own starts the code anew (seconds per step), so they buy isolation, not speed. The
choice is part of the jobs' definitions: the code location and its runs' containers must see the
same value (deploy/docker and deploy/k8s give it to both).
"""

from __future__ import annotations

import importlib
import os

import dagster as dg

EXECUTOR_VARIABLE = "MIGRATION_EXECUTOR"

BUILT_IN: dict[str, dg.ExecutorDefinition] = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}

# name -> (module, attribute, the package that provides it): imported only when chosen
DISTRIBUTED: dict[str, tuple[str, str, str]] = {
    "docker": ("dagster_docker", "docker_executor", "dagster-docker"),
    "k8s": ("dagster_k8s", "k8s_job_executor", "dagster-k8s"),
}


def executor_named(name: str) -> dg.ExecutorDefinition:
    """The executor called ``name`` (``in_process``, ``multiprocess``, ``docker`` or ``k8s``)."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    if name not in DISTRIBUTED:
        raise ValueError(f"{EXECUTOR_VARIABLE}={name!r} names no executor: use one of {', '.join([*BUILT_IN, *DISTRIBUTED])}")
    module, attribute, package = DISTRIBUTED[name]
    try:
        executor: dg.ExecutorDefinition = getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise ImportError(f"{EXECUTOR_VARIABLE}={name} needs {package}, which is not installed: pip install 'migration-assets[deploy]'") from exc
    return executor


def executor_from_env() -> dg.ExecutorDefinition:
    """The executor ``MIGRATION_EXECUTOR`` names, read as the definitions load; unset: in process."""
    return executor_named(os.environ.get(EXECUTOR_VARIABLE, "").strip() or "in_process")
