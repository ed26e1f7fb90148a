"""The Dagster UI in a real browser: headless Chromium (Debian's ``chromium``; ``.ci/run``
installs it) opens the asset graph and a run's page served by ``dagster-webserver`` on loopback,
takes a screenshot of each, and the pages as rendered show the assets and the run's status."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from migration_assets_tests.test_workflow import run
from migration_assets_tests.webserver import REPO, graphql, webserver

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("MIGRATION_REQUIRE_BROWSER"),
    reason="no chromium on this machine (apt-get install chromium; .ci/run installs it and requires this test)",
)
ASSETS = ["legacy_files", "parsed_records", "validated_records", "content_items", "knowledge_items", "embeddings", "migration_report"]


def rendered(url: str, screenshot: Path) -> str:
    """The page's text once its scripts have run (scripts and styles left out), and its screenshot."""
    assert CHROMIUM is not None, "MIGRATION_REQUIRE_BROWSER is set and no chromium is installed"
    browser = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000", "--virtual-time-budget=30000"]
    subprocess.run([*browser, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True).stdout
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_the_asset_graph_and_a_run_page_in_a_browser(tmp_path, sqlite_url):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"DATABASE_URL": sqlite_url, "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}
    sample = str(REPO / "migration_assets" / "sample_data")
    done = run("migrate", "--source", sample, "--backup", str(tmp_path / "bk"), "-q", "--json", home=home, url=sqlite_url, env=env)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["data"]["run_id"]
    with webserver(home, env, tmp_path / "webserver.log") as graphql_url:
        graphql(graphql_url, "mutation { setNuxSeen }")  # the first visit's "join the community" dialog, seen: it would cover the page
        base = graphql_url.rsplit("/", 1)[0]
        graph = rendered(f"{base}/locations/migration_assets/asset-groups/migration", tmp_path / "asset-graph.png")
        run_page = rendered(f"{base}/runs/{run_id}", tmp_path / "run.png")
    assert [name for name in ASSETS if name not in graph] == [], graph[:2000]
    assert run_id[:8] in run_page and "SUCCESS" in run_page.upper() and "migrate" in run_page, run_page[:2000]
    for shot in ("asset-graph.png", "run.png"):  # a page, not a blank window
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / shot).stat().st_size > 20_000
