"""The Dagster UI's own API, as a user drives it: the real ``dagster-webserver`` on loopback and
its GraphQL. A launch that sets one setting alone completes and lands rows; the target's password
is never shown, stored in a run, logged or written to a report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from migration_assets.store.database import get_engine
from migration_assets.store.tables import BACKUPS, CONTENT, RUNS
from migration_assets_tests.test_workflow import run
from migration_assets_tests.webserver import LOCATION, REPOSITORY, daemon, graphql, webserver

SAMPLE = Path(__file__).resolve().parent.parent / "migration_assets" / "sample_data"

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}"""


def home_for(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(  # runs start at once: no queue, so no daemon needed
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    return home


def launch(url: str, run_config: dict, partition: str) -> str:
    graphql(
        url,
        "mutation($r: RepositorySelector!, $k: String!) "
        '{ addDynamicPartition(repositorySelector: $r, partitionsDefName: "waves", partitionKey: $k) { __typename } }',
        {"r": REPOSITORY, "k": partition},
    )
    params = {
        "selector": {**REPOSITORY, "jobName": "migrate"},
        "runConfigData": run_config,
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    answer = graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def finished(url: str, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = graphql(url, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not finish")


def test_a_launch_that_sets_only_the_source_completes_and_lands_rows(tmp_path, sqlite_url):
    home = home_for(tmp_path)
    env = {"DATABASE_URL": sqlite_url, "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}
    with webserver(home, env, tmp_path / "webserver.log") as url:
        run_id = launch(url, {"resources": {"migration": {"config": {"source_directory": str(SAMPLE)}}}}, "sample-wave")
        assert finished(url, run_id) == "SUCCESS", (tmp_path / "webserver.log").read_text()[-3000:]
        second = launch(url, {"resources": {"migration": {"config": {"batch_size": 5}}}}, "batch-only")  # the default source: the sample
        assert finished(url, second) == "SUCCESS"
        materializations = graphql(
            url,
            '{ assetOrError(assetKey: {path: ["migration_report"]}) { ... on Asset { assetMaterializations '
            "{ runId metadataEntries { label ... on PathMetadataEntry { path } } } } } }",
        )["assetOrError"]["assetMaterializations"]
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(CONTENT)).scalar_one() > 0
    # each run's report is its own, linked from its materialization; the latest is copied beside them
    reports = {m["runId"]: next(e["path"] for e in m["metadataEntries"] if e["label"] == "report") for m in materializations}
    assert set(reports) == {run_id, second} and len(set(reports.values())) == 2
    for owner, path in reports.items():
        assert json.loads(Path(path).read_text())["run_id"] == owner
    assert json.loads((tmp_path / "bk" / "migration_report.json").read_text())["run_id"] == second


def test_the_target_password_is_never_shown_stored_logged_or_reported(tmp_path, postgres_url):
    secret = "Pw-4f9c2e-never-shown"
    target = make_url(postgres_url).set(password=secret).render_as_string(hide_password=False)  # trust auth: accepted, unused
    home = home_for(tmp_path)
    env = {"DATABASE_URL": target, "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}
    cli = run("migrate", "--source", str(SAMPLE), "--backup", str(tmp_path / "bk"), "--verbose", home=home, url=target, env=env)
    assert cli.returncode == 0, cli.stderr
    assert secret not in cli.stdout + cli.stderr
    with webserver(home, env, tmp_path / "webserver.log") as url:
        run_id = launch(url, {"resources": {"migration": {"config": {"source_directory": str(SAMPLE)}}}}, "ui-wave")
        assert finished(url, run_id) == "SUCCESS"
        shown = [
            graphql(url, "{ runsOrError { ... on Runs { results { runId runConfigYaml } } } }"),
            graphql(
                url,
                "query($r: RepositorySelector!) { allTopLevelResourceDetailsOrError(repositorySelector: $r) "
                "{ ... on ResourceDetailsList { results { name configuredValues { key value type } } } } }",
                {"r": REPOSITORY},
            ),
            graphql(
                url,
                "query($s: PipelineSelector!) { runConfigSchemaOrError(selector: $s) { ... on RunConfigSchema { rootDefaultYaml } } }",
                {"s": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "pipelineName": "migrate"}},
            ),
            graphql(
                url,
                "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }",
                {"id": run_id},
            ),
        ]
    assert len(shown[0]["runsOrError"]["results"]) == 2
    resources = {r["name"]: r["configuredValues"] for r in shown[1]["allTopLevelResourceDetailsOrError"]["results"]}
    assert any(value["value"] == "DATABASE_URL" and value["type"] == "ENV_VAR" for value in resources["target"]), resources["target"]
    assert secret not in repr(shown)
    # nor in the instance's files (runs, event logs, compute logs), the backups and reports, or the server's log
    for folder in (home, tmp_path / "bk"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert secret not in (tmp_path / "webserver.log").read_text()


STEP_FAILURES = """
query($id: ID!) {
  logsForRun(runId: $id) {
    ... on EventConnection { events { __typename ... on ExecutionStepFailureEvent { stepKey error { message stack } } } }
  }
}"""


def test_a_bad_source_fails_the_run_with_one_clear_line(tmp_path, sqlite_url):
    home = home_for(tmp_path)
    missing = tmp_path / "no-such-folder"
    with webserver(home, {"DATABASE_URL": sqlite_url, "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}, tmp_path / "webserver.log") as url:
        run_id = launch(url, {"resources": {"migration": {"config": {"source_directory": str(missing)}}}}, "bad-source")
        assert finished(url, run_id) == "FAILURE"
        events = graphql(url, STEP_FAILURES, {"id": run_id})["logsForRun"]["events"]
    failures = [event for event in events if event["__typename"] == "ExecutionStepFailureEvent"]
    assert [failure["stepKey"] for failure in failures] == ["legacy_files"], events
    message = failures[0]["error"]["message"]
    assert f"Failure: the run's settings cannot be used: the source directory {missing} does not exist" in message, message
    assert "\n" not in message.strip() and "Traceback" not in message and "Error occurred while executing" not in message


def test_a_run_that_fails_in_the_ui_is_closed_by_the_daemon_with_its_steps_own_error(tmp_path, sqlite_url):
    home = home_for(tmp_path)
    env = {"DATABASE_URL": sqlite_url, "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}
    with webserver(home, env, tmp_path / "webserver.log") as url, daemon(home, env, tmp_path / "daemon.log"):
        deadline = time.monotonic() + 120
        while "Initiating record_failed_runs" not in (tmp_path / "daemon.log").read_text():  # its first tick: it watches from then
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(1)
        config = {
            "resources": {"migration": {"config": {"source_directory": str(SAMPLE)}}, "embedding_model": {"config": {"provider": "no-such-model"}}}
        }
        run_id = launch(url, config, "fails-at-embeddings")
        assert finished(url, run_id) == "FAILURE"
        deadline, row = time.monotonic() + 180, None
        while time.monotonic() < deadline:  # the failed-run sensor, on by default, closes it at its next tick
            with get_engine(sqlite_url).connect() as conn:
                row = conn.execute(select(RUNS.c.status, RUNS.c.error).where(RUNS.c.id == run_id)).first()
            if row is not None and row.status != "running":
                break
            time.sleep(2)
    assert row is not None and row.status == "failed", (row, (tmp_path / "daemon.log").read_text()[-3000:])
    assert row.error.startswith("embeddings: ") and "no-such-model" in row.error, row.error  # the step's own error
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(BACKUPS).where(BACKUPS.c.run_id == run_id)).scalar_one() >= 1  # sealed
    report = tmp_path / "bk" / "migration_report.json"
    assert report.is_file() and run_id in report.read_text()


def test_the_sensor_turned_on_in_the_ui_requests_a_run_when_files_appear(tmp_path, sqlite_url):
    home = home_for(tmp_path)
    source = tmp_path / "incoming"
    source.mkdir()
    (source / "note.txt").write_text("A note that arrived in the watched folder.")
    env = {"DATABASE_URL": sqlite_url, "MIGRATION_SOURCE_DIR": str(source), "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}
    sensor = {**REPOSITORY, "sensorName": "watch_source_directory"}
    with webserver(home, env, tmp_path / "webserver.log") as url, daemon(home, env, tmp_path / "daemon.log"):
        state = graphql(
            url, "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { ... on Sensor { sensorState { status } } } }", {"s": sensor}
        )
        assert state["startSensor"]["sensorState"]["status"] == "RUNNING"  # it starts stopped: the user turns it on
        deadline, runs = time.monotonic() + 240, []
        while time.monotonic() < deadline and not any(run["status"] == "SUCCESS" for run in runs):
            time.sleep(2)
            runs = graphql(url, "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }")["runsOrError"]["results"]
    assert runs, (tmp_path / "daemon.log").read_text()[-3000:]
    (run,) = runs
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert run["status"] == "SUCCESS" and tags["migration/launcher"] == "sensor" and tags["migration/source"] == str(source)
    with get_engine(sqlite_url).connect() as conn:
        assert conn.execute(select(CONTENT.c.source_path)).scalars().all() == ["note.txt"]


def test_lineage_checks_and_partitions_as_the_ui_shows_them(tmp_path, sqlite_url):
    home = home_for(tmp_path)
    env = {"DATABASE_URL": sqlite_url, "MIGRATION_BACKUP_DIR": str(tmp_path / "bk")}
    with webserver(home, env, tmp_path / "webserver.log") as url:
        run_id = launch(url, {"resources": {"migration": {"config": {"source_directory": str(SAMPLE)}}}}, "lineage-wave")
        assert finished(url, run_id) == "SUCCESS"
        nodes = graphql(
            url,
            "{ assetNodes { assetKey { path } dependencyKeys { path } partitionKeysByDimension { partitionKeys } "
            "assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } } } }",
        )["assetNodes"]
        logs = graphql(
            url,
            "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { ... on LogMessageEvent { message } } } } }",
            {"id": run_id},
        )
    lines = [event.get("message", "") for event in logs["logsForRun"]["events"] if event]
    assert any(line.startswith("written: batch") for line in lines), lines  # progress while it writes
    assert any(f"Run {run_id} completed:" in line for line in lines), lines  # and its closing line
    by_name = {node["assetKey"]["path"][-1]: node for node in nodes}
    upstream = {name: [key["path"][-1] for key in node["dependencyKeys"]] for name, node in by_name.items()}
    chain = ["legacy_files", "parsed_records", "validated_records", "content_items", "knowledge_items", "embeddings", "migration_report"]
    assert upstream["legacy_files"] == [] and all(upstream[after] == [before] for before, after in zip(chain, chain[1:], strict=False))
    assert all(by_name[name]["partitionKeysByDimension"][0]["partitionKeys"] == ["lineage-wave"] for name in chain)
    checks = {
        (name, check["name"]): (check["executionForLatestMaterialization"] or {}).get("status")
        for name, node in by_name.items()
        for check in node["assetChecksOrError"]["checks"]
    }
    run_scoped = [("content_items", "reconciliation"), ("content_items", "duplicate_content"), ("content_items", "tracking_drift")]
    assert all(checks[key] == "SUCCEEDED" for key in [*run_scoped, ("embeddings", "relationships"), ("embeddings", "embeddings")]), checks
    assert ("embeddings", "target_relationships") in checks and ("content_items", "target_tracking_drift") in checks
