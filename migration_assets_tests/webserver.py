"""The real ``dagster-webserver`` on loopback for tests, and its GraphQL."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
LOCATION = "migration_assets"  # the code location, as workspace.yaml names it
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def webserver(home: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """``dagster-webserver`` on loopback over this repository's workspace; its GraphQL URL."""
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=5).status_code == 200:
                        break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            url = f"http://127.0.0.1:{port}/graphql"
            while True:  # the code location loads after the server answers
                entries = graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }")["workspaceOrError"]
                if entries["locationEntries"] and all(entry["loadStatus"] == "LOADED" for entry in entries["locationEntries"]):
                    break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


@contextlib.contextmanager
def daemon(home: Path, env: dict[str, str], log: Path) -> Iterator[None]:
    """``dagster-daemon`` (sensors, schedules, the run queue) over this repository's workspace."""
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env={**os.environ, **env, "DAGSTER_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            process.terminate()
            process.wait(timeout=60)


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict:
    """The ``data`` of a GraphQL answer (one without errors)."""
    answer = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]
