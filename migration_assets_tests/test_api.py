"""The REST API: the spec's workflow through the API alone on a real server on loopback (HTTP and
WebSocket), on SQLite and PostgreSQL; every kind of auth failure, the roles, the path
restrictions, bad requests, the audit log; and the same documents as the CLI's --json."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from migration_assets.api.access import Access, AccessConfigError, Token, token_digest
from migration_assets.audit import without_secrets
from migration_assets.store.database import get_engine
from migration_assets.store.tables import CONTENT, EMBEDDINGS, KNOWLEDGE, MAPPINGS
from migration_assets_tests.conftest import make_corpus

ADMIN_TOKEN = "admin-token-4f1b2c9e0d7a"
OPS_TOKEN = "ops-token-a81c55e2f0b4"  # a second admin, from the tokens file
VIEWER_TOKEN = "viewer-token-77d0e3b19c2a"
API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN, OPS, VIEWER = bearer(ADMIN_TOKEN), bearer(OPS_TOKEN), bearer(VIEWER_TOKEN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_tokens_file(path: Path) -> Path:
    path.write_text(
        "[[tokens]]\n"
        f'name = "ops"\nrole = "admin"\nsha256 = "{token_digest(OPS_TOKEN)}"\n\n'
        "[[tokens]]\n"
        f'name = "dashboard"\nrole = "viewer"\nsha256 = "{token_digest(VIEWER_TOKEN)}"\n'
    )
    return path


@dataclass
class Server:
    base: str
    process: subprocess.Popen[str]
    root: Path
    url: str
    home: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=120, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.base + path, timeout=300, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.delete(self.base + path, timeout=120, **kwargs)


def server_env(root: Path, url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATION_")}
    return {
        **env,
        "DATABASE_URL": url,
        "DAGSTER_HOME": str(home),
        "MIGRATION_API_TOKEN": ADMIN_TOKEN,
        "MIGRATION_API_TOKENS_FILE": str(write_tokens_file(root / "tokens.toml")),
        "MIGRATION_ALLOWED_ROOTS": str(root),
        "MIGRATION_BACKUP_DIR": str(root / "backups"),
    }


def start_server(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    with open(cwd / f"api-server-{port}.log", "w") as log:  # a file, not a pipe nobody reads: a full pipe would block the server
        process = subprocess.Popen(
            [sys.executable, "-m", "migration_assets.api", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the API server exited: {(cwd / f'api-server-{port}.log').read_text()}")
        try:
            if httpx.get(f"{base}{API}/openapi.json", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the API server did not answer within 60 s")


@contextmanager
def serve(tmp_path: Path, url: str) -> Iterator[Server]:
    root = tmp_path / "served"
    root.mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    process, base = start_server([], server_env(root, url, home), cwd=tmp_path)
    try:
        yield Server(base, process, root, url, home)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path, target_url: str) -> Iterator[Server]:
    """The API on a real server on loopback, over SQLite and over PostgreSQL."""
    with serve(tmp_path, target_url) as served:
        yield served


@pytest.fixture
def sqlite_server(tmp_path: Path, sqlite_url: str) -> Iterator[Server]:
    with serve(tmp_path, sqlite_url) as served:
        yield served


def follow(server: Server, migration_id: str, token: str = VIEWER_TOKEN) -> list[dict[str, Any]]:
    """Every event of the run's WebSocket, until the server closes it."""
    events = []
    with connect(f"ws://{server.base.removeprefix('http://')}{API}/migration/ws/{migration_id}", additional_headers=bearer(token)) as ws:
        for message in ws:
            events.append(json.loads(message))
    return events


def table_counts(url: str) -> dict[str, int]:
    engine = get_engine(url)
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in (CONTENT, KNOWLEDGE, EMBEDDINGS, MAPPINGS)}


def test_the_workflow_through_the_api_alone(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = make_corpus(server.root / "legacy", 60, seed=11)
    expected = corpus.expected_records()
    before = table_counts(server.url)
    body = {"source_directory": str(corpus.root), "backup_directory": str(server.root / "backups"), "batch_size": 20}
    # validate
    validated = server.post(f"{API}/migration/validate", json=body, headers=VIEWER)
    assert validated.status_code == 200, validated.text
    assert validated.json()["data"]["totals"]["valid_records"] == expected
    # start: answered at once, the id known to status from the first moment
    started = server.post(f"{API}/migration/start", json=body, headers=OPS)
    assert started.status_code == 202, started.text
    migration_id = started.json()["data"]["migration_id"]
    first = server.get(f"{API}/migration/status/{migration_id}", headers=VIEWER).json()["data"]
    assert first["run_id"] == migration_id and first["status"] in ("running", "completed")
    # follow it on the WebSocket to the end
    events = follow(server, migration_id)
    progress, final = [e for e in events if e["event"] == "progress"], events[-1]
    assert progress and final["event"] == "finished" and final["status"] == "completed", events
    assert progress[-1]["files_done"] == progress[-1]["files_total"] == len(corpus.files) and progress[-1]["percent"] == 100.0
    assert {"records_succeeded", "records_failed", "files_per_minute", "memory_mb", "timestamp"} <= set(progress[-1])
    assert final["totals"]["records"]["inserted"] == expected and all(check["passed"] for check in final["integrity"])
    status = server.get(f"{API}/migration/status/{migration_id}", headers=VIEWER).json()["data"]
    assert status["status"] == "completed" and status["totals"] == final["totals"]
    # the run is an ordinary Dagster run, tagged with who started it
    import dagster as dg

    monkeypatch.setenv("DAGSTER_HOME", str(server.home))
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(migration_id)
        assert run is not None and run.job_name == "migrate" and run.tags["migration/started_by"] == "ops"
    # history, stats, content
    history = server.get(f"{API}/migration/history", params={"source": str(corpus.root)}, headers=VIEWER).json()["data"]
    assert [r["run_id"] for r in history["runs"]] == [migration_id]
    stats = server.get(f"{API}/migration/stats", headers=VIEWER).json()["data"]
    assert stats["content_items"]["total"] == expected and stats["embeddings"]["total"] == stats["knowledge_items"]["items"] > 0
    page = server.get(f"{API}/content/items", params={"per_page": 7, "page": 2, "run": migration_id}, headers=VIEWER).json()["data"]
    assert page["total"] == expected and len(page["items"]) == 7 and page["pages"] == -(-expected // 7)
    markdown = server.get(f"{API}/content/items", params={"format": "markdown", "per_page": 500}, headers=VIEWER).json()["data"]
    assert markdown["total"] > 0 and {i["source_format"] for i in markdown["items"]} == {"markdown"}
    longest = max(
        (
            i
            for p in range(1, page["pages"] + 1)
            for i in server.get(f"{API}/content/items", params={"per_page": 7, "page": p}, headers=VIEWER).json()["data"]["items"]
        ),
        key=lambda i: i["content_length"],
    )
    whole = server.get(f"{API}/content/items/{longest['id']}", headers=VIEWER).json()["data"]
    assert len(whole["content"]) == whole["content_length"] and whole["knowledge_items"] and whole["knowledge_items"][0]["embedding_model"]
    by_legacy = server.get(f"{API}/content/items/legacy/{longest['legacy_id']}", headers=VIEWER).json()["data"]
    assert by_legacy == whole
    # export, then roll the migration back: the content tables are as before
    exported = server.get(f"{API}/migration/export", headers=ADMIN)
    assert exported.status_code == 200 and exported.json()["data"]["files"][0]["rows"] == expected
    assert (Path(exported.json()["data"]["output"]) / "manifest.json").is_file()
    undone = server.post(f"{API}/migration/rollback/{migration_id}", headers=ADMIN)
    assert undone.status_code == 200 and undone.json()["data"]["applied"], undone.text
    assert table_counts(server.url) == before
    assert server.get(f"{API}/migration/status/{migration_id}", headers=VIEWER).json()["data"]["status"] == "rolled_back"
    # and the export comes back by import
    imported = server.post(f"{API}/migration/import", json={"input_directory": exported.json()["data"]["output"]}, headers=ADMIN)
    assert imported.status_code == 200 and imported.json()["data"]["counts"]["inserted"] == expected, imported.text
    # the audit log has every change, with who did it
    entries = server.get(f"{API}/audit", params={"limit": 1000}, headers=ADMIN).json()["data"]["entries"]
    done = {(e["action"], e["actor"], e["outcome"]) for e in entries}
    assert ("POST /api/v1/migration/start", "ops", "succeeded") in done
    assert ("POST /api/v1/migration/rollback/{migration_id}", "admin", "succeeded") in done
    assert ("GET /api/v1/migration/export", "admin", "succeeded") in done
    assert ("POST /api/v1/migration/import", "admin", "succeeded") in done
    start_entry = next(e for e in entries if e["action"].endswith("/start"))
    assert start_entry["target_run"] == migration_id and start_entry["parameters"]["source_directory"] == str(corpus.root)


def test_the_api_returns_the_documents_of_the_cli(sqlite_server: Server) -> None:
    corpus = make_corpus(sqlite_server.root / "legacy", 20, seed=3)
    body = {"source_directory": str(corpus.root)}
    migration_id = sqlite_server.post(f"{API}/migration/start", json=body, headers=ADMIN).json()["data"]["migration_id"]
    assert follow(sqlite_server, migration_id)[-1]["status"] == "completed"
    env = {**os.environ, "DATABASE_URL": sqlite_server.url, "DAGSTER_HOME": str(sqlite_server.home)}

    def cli(*args: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "migration_assets.cli", *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    for path, args in (
        (f"/migration/status/{migration_id}", ["status", migration_id]),
        ("/migration/history", ["history"]),
        ("/migration/stats", ["stats"]),
        ("/search?q=the+legacy+export&limit=5", ["search", "the legacy export", "--limit", "5"]),
    ):
        from_api, from_cli = sqlite_server.get(API + path, headers=VIEWER).json(), cli(*args)
        assert from_api["data"] == from_cli["data"] and from_api["message"] == from_cli["message"], path
        assert set(from_api) == set(from_cli) == {"success", "message", "data", "timestamp"}
    validation = sqlite_server.post(f"{API}/migration/validate", json=body, headers=VIEWER).json()["data"]
    from_cli = cli("validate", "--source", str(corpus.root), "--output", str(sqlite_server.root / "v.json"))["data"]
    assert validation["totals"] == from_cli["totals"] and validation["by_rule"] == from_cli["by_rule"]


def test_a_running_migration_cannot_be_rolled_back_nor_started_twice(sqlite_server: Server) -> None:
    corpus = make_corpus(sqlite_server.root / "legacy", 60, seed=5)  # the run is running from the 202 on
    body = {"source_directory": str(corpus.root)}
    migration_id = sqlite_server.post(f"{API}/migration/start", json=body, headers=ADMIN).json()["data"]["migration_id"]
    refused = sqlite_server.post(f"{API}/migration/rollback/{migration_id}", headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["error"] == "refused" and "still running" in refused.json()["message"]
    again = sqlite_server.post(f"{API}/migration/start", json=body, headers=ADMIN)
    assert again.status_code == 409 and migration_id in again.json()["message"]
    busy = sqlite_server.delete(f"{API}/migration/cleanup/{migration_id}", headers=ADMIN)
    assert busy.status_code == 409 and "still running" in busy.json()["message"]
    assert follow(sqlite_server, migration_id)[-1]["status"] == "completed"
    assert sqlite_server.post(f"{API}/migration/rollback/{migration_id}", json={"dry_run": True}, headers=ADMIN).json()["data"]["applied"] is False
    kept = sqlite_server.delete(f"{API}/migration/cleanup/{migration_id}", headers=ADMIN).json()["data"]
    assert kept["removed"] is False and kept["reversible_before"]  # still undoable: only with confirm
    cleaned = sqlite_server.delete(f"{API}/migration/cleanup/{migration_id}", params={"confirm": "true"}, headers=ADMIN).json()["data"]
    assert cleaned["removed"] and not any(Path(p).exists() for p in cleaned["paths"])
    refusals = sqlite_server.get(f"{API}/audit", params={"outcome": "refused", "run": migration_id}, headers=ADMIN).json()["data"]["entries"]
    assert {e["action"] for e in refusals} >= {"POST /api/v1/migration/rollback/{migration_id}", "DELETE /api/v1/migration/cleanup/{migration_id}"}


# --- in-process: the same app, its test client -------------------------------------------------


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Any, Path]]:
    from fastapi.testclient import TestClient

    from migration_assets.api.app import create_app

    root = tmp_path / "served"
    (root / "legacy").mkdir(parents=True)
    (root / "legacy" / "a.json").write_text(json.dumps({"id": "a-1", "title": "A", "content": "Some text."}))
    env = {
        "MIGRATION_API_TOKEN": ADMIN_TOKEN,
        "MIGRATION_API_TOKENS_FILE": str(write_tokens_file(tmp_path / "tokens.toml")),
        "MIGRATION_ALLOWED_ROOTS": str(root),
    }
    app = create_app(access=Access.from_env(environ=env), database_url=sqlite_url, backup_directory=str(root / "backups"), max_body=64 * 1024)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, root


def envelope_error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    document = response.json()
    assert document["success"] is False and document["error"] == kind and document["message"] and "timestamp" in document, document
    assert "Traceback" not in response.text
    return document


READS = [
    ("get", f"{API}/migration/history"),
    ("get", f"{API}/migration/stats"),
    ("get", f"{API}/content/items"),
    ("get", f"{API}/migration/status/x"),
]
CHANGES = [
    ("post", f"{API}/migration/start"),
    ("post", f"{API}/migration/rollback/x"),
    ("delete", f"{API}/migration/cleanup/x"),
    ("get", f"{API}/migration/export"),
    ("post", f"{API}/migration/import"),
    ("get", f"{API}/audit"),
]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        bearer(""),
        bearer(ADMIN_TOKEN + "x"),
        bearer(ADMIN_TOKEN[:-1]),
    ],
    ids=["none", "wrong", "basic", "no-scheme", "empty", "longer", "shorter"],
)
def test_every_endpoint_needs_a_valid_token(client, headers) -> None:
    test_client, _ = client
    for method, path in READS + CHANGES + [("post", f"{API}/migration/validate")]:
        response = getattr(test_client, method)(path, headers=headers)
        envelope_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_viewer_reads_and_may_not_change_anything(client) -> None:
    test_client, root = client
    for _, path in READS:
        assert test_client.get(path, headers=VIEWER).status_code in (200, 404)
    for method, path in CHANGES:
        document = envelope_error(getattr(test_client, method)(path, headers=VIEWER), 403, "forbidden")
        assert "dashboard" in document["message"] and "admin" in document["message"]
    assert test_client.post(f"{API}/migration/validate", json={"source_directory": str(root / "legacy")}, headers=VIEWER).status_code == 200
    entries = test_client.get(f"{API}/audit", params={"limit": 100}, headers=OPS).json()["data"]["entries"]
    assert sum(e["status_code"] == 403 and e["actor"] == "dashboard" and e["role"] == "viewer" for e in entries) == len(CHANGES)


def test_paths_must_lie_under_the_allowed_roots(client, tmp_path: Path) -> None:
    test_client, root = client
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sneaky").symlink_to(outside)
    legacy = str(root / "legacy")
    cases = [
        ("source_directory", {"source_directory": "/etc"}),
        ("source_directory", {"source_directory": str(root / "sneaky")}),  # a link out of the root
        ("source_directory", {"source_directory": str(root / "legacy" / ".." / ".." / "outside")}),
        ("source_directory", {"source_directory": "legacy"}),  # relative: to what?
        ("source_directory", {"source_directory": legacy + "\x00"}),
        ("backup_directory", {"source_directory": legacy, "backup_directory": str(outside)}),
        ("rules_file", {"source_directory": legacy, "rules_file": "/etc/passwd"}),
        ("source_directory", {"source_directory": str(root / "missing")}),  # allowed, but no such folder
    ]
    for field, body in cases:
        for path in ("/migration/start", "/migration/validate"):
            document = envelope_error(test_client.post(API + path, json=body, headers=ADMIN), 422, "validation_error")
            assert list(document["details"]["field_errors"]) == [field], (body, document)
    document = envelope_error(
        test_client.post(f"{API}/migration/import", json={"input_directory": str(outside)}, headers=ADMIN), 422, "validation_error"
    )
    assert "input_directory" in document["details"]["field_errors"]
    document = envelope_error(
        test_client.get(f"{API}/migration/export", params={"output": str(outside / "x")}, headers=ADMIN), 422, "validation_error"
    )
    assert "output" in document["details"]["field_errors"] and not (outside / "x").exists()
    # an export into a folder of other files (a source) would be migrated with it next time
    document = envelope_error(test_client.get(f"{API}/migration/export", params={"output": legacy}, headers=ADMIN), 422, "validation_error")
    assert "holds other files" in document["details"]["field_errors"]["output"][0] and sorted(p.name for p in Path(legacy).iterdir()) == ["a.json"]
    # links inside an allowed folder that lead out of the roots: the server would write (or read) through them
    victim = outside / "victim.txt"
    victim.write_text("precious")
    (root / "trap").mkdir()
    (root / "trap" / "content_items.jsonl").symlink_to(victim)
    document = envelope_error(
        test_client.get(f"{API}/migration/export", params={"output": str(root / "trap")}, headers=ADMIN), 422, "validation_error"
    )
    assert "symbolic link out of the allowed roots" in document["details"]["field_errors"]["output"][0] and victim.read_text() == "precious"
    (root / "bk").mkdir()
    (root / "bk" / "reports").symlink_to(outside)
    body = {"source_directory": legacy, "backup_directory": str(root / "bk")}
    document = envelope_error(test_client.post(f"{API}/migration/start", json=body, headers=ADMIN), 422, "validation_error")
    assert list(document["details"]["field_errors"]) == ["backup_directory"]
    # a backup folder inside its own source would be migrated with it next time
    body = {"source_directory": legacy, "backup_directory": legacy + "/bk"}
    document = envelope_error(test_client.post(f"{API}/migration/start", json=body, headers=ADMIN), 422, "validation_error")
    assert "inside the source directory" in document["details"]["field_errors"]["backup_directory"][0]
    # a history filter is a path too: a link loop or a path out of the roots is a field error, never a 500
    (root / "loop").symlink_to(root / "loop")
    for source in (str(root / "loop"), "/proc/self/cwd", ".."):
        document = envelope_error(test_client.get(f"{API}/migration/history", params={"source": source}, headers=ADMIN), 422, "validation_error")
        assert list(document["details"]["field_errors"]) == ["source"]
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


def test_bad_requests_get_the_error_envelope_never_a_500(client) -> None:
    test_client, root = client
    legacy = str(root / "legacy")
    cases: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
        ("post", "/migration/start", {"json": {}}, 422, "validation_error", "source_directory"),
        ("post", "/migration/start", {"json": {"source_directory": legacy, "batch_size": "many"}}, 422, "validation_error", "batch_size"),
        ("post", "/migration/start", {"json": {"source_directory": legacy, "batch_size": 0}}, 422, "validation_error", "batch_size"),
        ("post", "/migration/start", {"json": {"source_directory": legacy, "max_workers": 10**30}}, 422, "validation_error", "max_workers"),
        ("post", "/migration/start", {"json": {"source_directory": legacy, "dry_run": "perhaps"}}, 422, "validation_error", "dry_run"),
        ("post", "/migration/start", {"json": {"source_directory": legacy, "sorce": 1}}, 422, "validation_error", "sorce"),
        ("post", "/migration/start", {"json": [legacy]}, 422, "validation_error", None),
        ("post", "/migration/start", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "validation_error", None),
        ("post", "/migration/rollback/x", {"json": {"cascade": "yes please"}}, 422, "validation_error", "cascade"),
        ("post", "/migration/rollback/no-such-run", {}, 404, "unknown_run", None),
        ("get", "/migration/status/no-such-run", {}, 404, "unknown_run", None),
        ("delete", "/migration/cleanup/no-such-run", {}, 404, "unknown_run", None),
        ("get", "/content/items/987654", {}, 404, "not_found", None),
        ("get", "/content/items/not-a-number", {}, 422, "validation_error", "item_id"),
        ("get", "/content/items/legacy/no/such/id", {}, 404, "not_found", None),
        ("get", "/content/items", {"params": {"per_page": 0}}, 422, "validation_error", "per_page"),
        ("get", "/migration/history", {"params": {"limit": "ten"}}, 422, "validation_error", "limit"),
        ("get", "/no/such/endpoint", {}, 404, "not_found", None),
        ("get", "/migration/status/%00", {}, 422, "validation_error", None),
        ("get", "/content/items", {"params": {"source": "a\x00b"}}, 422, "validation_error", None),
        ("get", "/audit", {"params": {"actor": "\x00"}}, 422, "validation_error", None),
        ("put", "/migration/start", {}, 405, "method_not_allowed", None),
        (
            "post",
            "/migration/start",
            {"content": b"x" * (65 * 1024), "headers": {"content-type": "application/json"}},
            413,
            "payload_too_large",
            None,
        ),
        ("post", "/migration/import", {"json": {"input_directory": legacy}}, 422, "refused", "input_directory"),  # not an export
    ]
    for method, path, kwargs, status, kind, field in cases:
        headers = {**ADMIN, **kwargs.pop("headers", {})}
        document = envelope_error(getattr(test_client, method)(API + path, headers=headers, **kwargs), status, kind)
        if field:
            assert field in document["details"]["field_errors"], (path, document)
    # a body over the limit without a length (chunked) is refused too
    chunks = (b"x" * 8192 for _ in range(20))
    envelope_error(
        test_client.post(f"{API}/migration/start", content=chunks, headers={**ADMIN, "content-type": "application/json"}), 413, "payload_too_large"
    )
    refused = test_client.get(f"{API}/audit", params={"outcome": "refused", "limit": 1000}, headers=ADMIN).json()["data"]["entries"]
    assert len(refused) >= len(cases) and all(e["outcome"] == "refused" and e["status_code"] >= 400 for e in refused)


def test_the_websocket_needs_a_token_and_says_when_a_run_is_unknown(sqlite_server: Server) -> None:
    address = f"ws://{sqlite_server.base.removeprefix('http://')}{API}/migration/ws/no-such-run"
    with pytest.raises(InvalidStatus), connect(address):
        pass
    with pytest.raises(InvalidStatus), connect(address, additional_headers=bearer("wrong")):
        pass
    with connect(address, additional_headers=VIEWER) as ws:
        event = json.loads(ws.recv())
    assert event["event"] == "error" and event["error"] == "unknown_run"
    refused = sqlite_server.get(f"{API}/audit", params={"outcome": "refused"}, headers=ADMIN).json()["data"]["entries"]
    assert sum(e["action"].startswith("WEBSOCKET") for e in refused) == 2


def test_the_server_refuses_to_start_without_tokens_unless_local(tmp_path: Path, sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGRATION_")}
    env.update(DATABASE_URL=sqlite_url, DAGSTER_HOME=str(tmp_path))

    def refused(*args: str, extra: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "migration_assets.api", "--port", str(free_port()), *args],
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and done.stderr.count("\n") <= 3, done.stderr
        return done.stderr

    assert "no API token is configured" in refused()
    assert "loopback" in refused("--insecure-local", "--host", "0.0.0.0")
    clear = tmp_path / "clear.toml"
    clear.write_text('[[tokens]]\nname = "x"\nrole = "admin"\ntoken = "hunter2"\n')
    assert "in clear" in refused(extra={"MIGRATION_API_TOKENS_FILE": str(clear)})
    bad_role = tmp_path / "role.yaml"
    bad_role.write_text(f"tokens:\n  - name: x\n    role: root\n    sha256: {token_digest('t')}\n")
    assert "role" in refused(extra={"MIGRATION_API_TOKENS_FILE": str(bad_role)})
    process, base = start_server(["--insecure-local"], env, cwd=tmp_path)
    try:
        assert httpx.get(f"{base}{API}/migration/stats", timeout=30).status_code == 200  # loopback, no token: the local admin
        # but never a web page this machine's browser opens: another Host (DNS rebinding) or a cross-site Origin
        rebound = httpx.get(f"{base}{API}/migration/stats", headers={"Host": "attacker.example"}, timeout=30)
        assert rebound.status_code == 403 and rebound.json()["error"] == "forbidden"
        cross_site = httpx.get(f"{base}{API}/migration/export", headers={"Origin": "http://evil.example"}, timeout=30)
        assert cross_site.status_code == 403
        assert httpx.get(f"{base}{API}/migration/stats", headers={"Origin": base}, timeout=30).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    hashed = subprocess.run([sys.executable, "-m", "migration_assets.api", "hash-token"], input="s3cret\n", capture_output=True, text=True, env=env)
    assert hashed.stdout.strip() == hashlib.sha256(b"s3cret").hexdigest()


def test_tokens_are_matched_whole_and_secrets_never_reach_the_audit_log(tmp_path: Path) -> None:
    access = Access([Token("a", "admin", hashlib.sha256(b"tok-a").digest()), Token("b", "viewer", hashlib.sha256(b"tok-b").digest())], [tmp_path])
    assert access.caller("tok-a").role == "admin" and access.caller("tok-b").role == "viewer"
    assert access.caller("tok-") is None and access.caller("tok-ab") is None and access.caller("") is None and access.caller(None) is None
    with pytest.raises(AccessConfigError):
        Access.from_env(environ={})
    cleaned = without_secrets({"database_url": "postgresql://u:hunter2@db/x", "api_token": "abc", "nested": [{"password": "p", "ok": 1}]})
    assert "hunter2" not in json.dumps(cleaned) and cleaned["api_token"] == "***" and cleaned["nested"][0] == {"password": "***", "ok": 1}


def test_the_openapi_document_lists_every_endpoint_of_the_spec(client) -> None:
    test_client, _ = client
    document = test_client.get(f"{API}/openapi.json").json()
    wanted = {
        ("post", "/migration/validate"),
        ("post", "/migration/start"),
        ("get", "/migration/status/{migration_id}"),
        ("get", "/migration/history"),
        ("post", "/migration/rollback/{migration_id}"),
        ("delete", "/migration/cleanup/{migration_id}"),
        ("get", "/migration/stats"),
        ("get", "/migration/export"),
        ("post", "/migration/import"),
        ("get", "/content/items"),
        ("get", "/content/items/{item_id}"),
        ("get", "/search"),
        ("get", "/audit"),
    }
    assert wanted <= {(method, path.removeprefix(API)) for path, item in document["paths"].items() for method in item}
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    start = document["paths"][f"{API}/migration/start"]["post"]
    body = document["components"]["schemas"][start["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert (
        set(body["properties"]) >= {"source_directory", "batch_size", "validate_data", "max_workers", "rules_file"}
        and body["additionalProperties"] is False
    )


@pytest.fixture
def postgres_server(tmp_path: Path, postgres_url: str) -> Iterator[Server]:
    with serve(tmp_path, postgres_url) as served:
        yield served


def test_schemathesis_finds_no_server_error_and_no_response_off_the_schema(postgres_server: Server, tmp_path: Path) -> None:
    """Schemathesis generates requests from the OpenAPI document (valid and not) against the real
    server, with a migrated run and its items to point at: no 5xx, and every response (status,
    content type, body) is one the document declares. On PostgreSQL, the stricter of the two
    targets (it refuses texts SQLite stores)."""
    server = postgres_server
    corpus = make_corpus(server.root / "legacy", 20, seed=2)
    migration_id = server.post(f"{API}/migration/start", json={"source_directory": str(corpus.root)}, headers=ADMIN).json()["data"]["migration_id"]
    assert follow(server, migration_id)[-1]["status"] == "completed"
    item = server.get(f"{API}/content/items", params={"per_page": 1}, headers=VIEWER).json()["data"]["items"][0]
    # texts no database stores (NUL, lone surrogates) are refused, answered as JSON, and audited
    before = server.get(f"{API}/audit", headers=ADMIN).json()["data"]["total"]
    for raw in (
        b'{"source_directory": "/x\\ud800y"}',
        b'{"\\udcff": 1, "source_directory": "\\u0000"}',
        b'{"source_directory": "/a", "rules_file": "\\ud800"}',
    ):
        response = server.post(f"{API}/migration/start", content=raw, headers={**ADMIN, "content-type": "application/json"})
        assert response.status_code == 422 and response.json()["error"] == "validation_error", response.text
    logs = "".join(p.read_text() for p in tmp_path.glob("api-server-*.log"))
    assert server.get(f"{API}/audit", headers=ADMIN).json()["data"]["total"] == before + 3, logs[-3000:]
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'[parameters]\n"path.migration_id" = "{migration_id}"\n"path.item_id" = {item["id"]}\n"path.legacy_id" = {json.dumps(item["legacy_id"])}\n'
    )
    checks = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{server.base}{API}/openapi.json"),
            *("-H", f"Authorization: Bearer {ADMIN_TOKEN}", "--checks", checks, "--max-examples", "10", "--generation-database", "none"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout and "failed" not in done.stdout.split("SUMMARY")[-1].lower()


def test_a_started_migration_whose_process_is_killed_ends_failed_and_can_be_started_again(sqlite_server: Server) -> None:
    import signal

    from migration_assets.store.tables import RUNS

    corpus = make_corpus(sqlite_server.root / "legacy", 60, seed=9)
    body = {"source_directory": str(corpus.root)}
    migration_id = sqlite_server.post(f"{API}/migration/start", json=body, headers=ADMIN).json()["data"]["migration_id"]
    with get_engine(sqlite_server.url).connect() as conn:
        process = conn.execute(select(RUNS.c.process).where(RUNS.c.id == migration_id)).scalar_one()
    assert process["pid"] != sqlite_server.process.pid
    os.killpg(process["pid"], signal.SIGKILL)  # the launched process, and anything it started
    deadline = time.monotonic() + 60
    while (status := sqlite_server.get(f"{API}/migration/status/{migration_id}", headers=VIEWER).json()["data"])["status"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["status"] == "failed" and "is gone" in status["error"]
    final = follow(sqlite_server, migration_id)[-1]
    assert final["event"] == "finished" and final["status"] == "failed" and final["error"] == status["error"]
    again = sqlite_server.post(f"{API}/migration/start", json=body, headers=ADMIN)
    assert again.status_code == 202 and follow(sqlite_server, again.json()["data"]["migration_id"])[-1]["status"] == "completed"


def test_a_websocket_for_an_id_no_run_can_have_ends_with_an_error_event(client) -> None:
    test_client, _ = client
    for bad in ("a%00b", "x" * 300):
        with test_client.websocket_connect(f"{API}/migration/ws/{bad}", headers=ADMIN) as socket:
            event = socket.receive_json()
            assert event["event"] == "error" and event["error"] == "unknown_run", event


def test_a_token_in_a_query_string_never_reaches_the_server_log() -> None:
    import logging

    from migration_assets.api.__main__ import _hide_tokens

    line = ("127.0.0.1", "GET", "/ws/1?access_token=s3cret&x=1")
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', line, None)
    assert _hide_tokens(record) and "s3cret" not in record.getMessage() and "access_token=***&x=1" in record.getMessage()
