"""The distributed deployment as shipped in ``deploy/docker`` and ``deploy/k8s``: each instance
config loads with Dagster's own classes on the local PostgreSQL; the docker and k8s executors take
the migrate job and their launchpad configs; the Compose file, the instance and the workspace
agree; the image's command serves the code location; the Helm values name the image, the run
launcher and the variables the jobs need.

What cannot run here is not imitated. There is no Docker engine and no Kubernetes cluster on this
machine: no image is built, no container or pod is started, and Helm does not render the chart
(the instance it writes is transcribed from the chart's templates in ``chart_instance``). The tests
go as far as Dagster goes without them and say where they stop. Those that need dagster-docker or
dagster-k8s skip when it is not installed, and fail instead with ``MIGRATION_REQUIRE_DEPLOY=1``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._record import copy as with_fields
from sqlalchemy.engine import make_url

from migration_assets.defs.executors import EXECUTOR_VARIABLE, executor_from_env, executor_named
from migration_assets_tests.webserver import free_port, graphql

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "deploy" / "docker"
K8S = REPO / "deploy" / "k8s"
PRODUCTION_INSTANCE = REPO / "deploy" / "postgres" / "dagster.yaml"
BIN = Path(sys.executable).parent
LOCATION = "migration_assets"
JOBS = {"migrate", "migrate_incremental", "validate_only", "repair_derived", "integrity_checks"}
REQUIRE_DEPLOY = os.environ.get("MIGRATION_REQUIRE_DEPLOY") == "1"


def require(*modules: str) -> None:
    """Skip (or, with MIGRATION_REQUIRE_DEPLOY=1, fail) when a module of the deploy extra is missing."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if not missing:
        return
    reason = f"the deploy extra is not installed (missing {', '.join(missing)}): pip install -e '.[deploy]'"
    if REQUIRE_DEPLOY:
        pytest.fail(f"{reason}, and MIGRATION_REQUIRE_DEPLOY=1 makes the deploy tests mandatory")
    pytest.skip(reason)


@pytest.fixture
def docker_library() -> None:
    require("dagster_docker")


@pytest.fixture
def k8s_library() -> None:
    require("dagster_k8s")


# ---------------------------------------------------------------------------------------------
# The shipped files, read as their tools read them


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def interpolate(text_: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``."""

    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group("name"), match.group("op"), match.group("arg")
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise ValueError(f"{name}: {argument}")
        return argument if operator == ":-" else ""

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}", value, text_)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """docker-compose.yml as Compose sees it, with ``env`` as the shell's and ``.env``'s variables."""
    env = {"POSTGRES_PASSWORD": "secret"} if env is None else env
    return yaml.safe_load(interpolate((DOCKER / "docker-compose.yml").read_text(), env))


def dockerfile_instruction(name: str) -> list[str]:
    """The JSON (exec) form of a Dockerfile instruction, e.g. CMD."""
    (line,) = [line for line in (DOCKER / "Dockerfile").read_text().splitlines() if line.startswith(f"{name} ")]
    return json.loads(line.removeprefix(f"{name} "))


def dockerfile_env() -> dict[str, str]:
    """The ENV of the Dockerfile (one ENV instruction, continued over lines)."""
    body = re.search(r"^ENV (.*?)(?:\n\n|\n(?=[A-Z]))", (DOCKER / "Dockerfile").read_text(), re.S | re.M)
    assert body, "the Dockerfile sets no ENV"
    return dict(pair.split("=", 1) for pair in body.group(1).replace("\\\n", " ").split())


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def with_option(command: list[str], flag: str, value: str) -> list[str]:
    changed = list(command)
    changed[changed.index(flag) + 1] = value
    return changed


def named_volume_mounts(mounts: list[str]) -> dict[str, str]:
    """``name:/path[:mode]`` mounts of named volumes (not host paths), as {name: path}."""
    return {source: target for source, target, *_ in (mount.split(":") for mount in mounts) if not source.startswith(("/", "."))}


def chart_instance(values: dict[str, Any], namespace: str = "dagster") -> dict[str, Any]:
    """The dagster.yaml that Dagster's chart writes from ``values``, for the parts they set: its
    PostgreSQL storages, the K8sRunLauncher and the run queue. Transcribed from the chart's
    templates (``configmap-instance.yaml`` and ``helpers/instance/*.tpl``), because Helm is not on
    this machine; the ``env:`` names are the variables the chart sets on its pods."""
    pg = values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher_config: dict[str, Any] = {
        "load_incluster_config": launcher.get("loadInclusterConfig", True),
        "job_namespace": launcher.get("jobNamespace") or namespace,
        "image_pull_policy": launcher.get("imagePullPolicy", "Always"),
        "service_account_name": "dagster",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}, *(ref["name"] for ref in launcher.get("envConfigMaps", []))],
    }
    if launcher.get("envSecrets"):
        launcher_config["env_secrets"] = [ref["name"] for ref in launcher["envSecrets"]]
    for key, name in {"envVars": "env_vars", "volumeMounts": "volume_mounts", "volumes": "volumes"}.items():
        if launcher.get(key):
            launcher_config[name] = launcher[key]
    queue = values["dagsterDaemon"]["runCoordinator"]
    assert queue["enabled"] and queue["type"] == "QueuedRunCoordinator"
    queued = queue["config"]["queuedRunCoordinator"]
    return {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": {"postgres_db": postgres_db}},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage", "config": {"postgres_db": postgres_db}},
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": {"postgres_db": postgres_db},
        },
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher_config},
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": queued["maxConcurrentRuns"], "tag_concurrency_limits": queued["tagConcurrencyLimits"]},
        },
        "telemetry": {"enabled": values.get("telemetry", {}).get("enabled", True)},
    }


def chart_pod_env(home: Path) -> dict[str, str]:
    """The variables Dagster's chart sets on the webserver's and the daemon's pods, which its
    instance config reads (the names of its ConfigMaps and Secret, DAGSTER_HOME)."""
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "dagster-pipeline-env",
    }


def user_deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


# ---------------------------------------------------------------------------------------------
# The local PostgreSQL stands in for the deployment's (conftest's instance_db)


def docker_home(tmp_path: Path, workspace: dict[str, Any] | None = None) -> Path:
    """A DAGSTER_HOME as the image lays it out: deploy/docker's dagster.yaml and workspace.yaml
    (``workspace``, when given, stands for the latter)."""
    home = tmp_path / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(DOCKER / "dagster.yaml", home / "dagster.yaml")
    if workspace is None:
        shutil.copy(DOCKER / "workspace.yaml", home / "workspace.yaml")
    else:
        (home / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    return home


def service_env(service: str, instance_url: str, target_url: str, tmp_path: Path) -> dict[str, str]:
    """A Compose service's environment, but for where things are on this machine: the two URLs
    name the local server instead of the service ``postgresql``, and the source and backup
    folders are temporary ones instead of the volumes."""
    env = {key: str(value) for key, value in compose()["services"][service]["environment"].items()}
    source, backups = tmp_path / "source", tmp_path / "backups"
    source.mkdir(exist_ok=True)
    backups.mkdir(exist_ok=True)
    env.update(DAGSTER_POSTGRES_URL=instance_url, DATABASE_URL=target_url, MIGRATION_SOURCE_DIR=str(source), MIGRATION_BACKUP_DIR=str(backups))
    return env


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` with this virtualenv's Dagster executables, stopped (killed if need be) afterwards."""
    executable = BIN / command[0]
    assert executable.exists(), f"{command[0]} is not in {BIN}"
    with open(log, "wb") as out:
        child = subprocess.Popen([str(executable), *command[1:]], cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=20)


@contextlib.contextmanager
def code_server(env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """The image's CMD on a free port of this machine, healthy by the Compose file's own health
    check; its port. Shut down over gRPC afterwards, which stops it and the server it spawned."""
    from dagster._grpc.client import DagsterGrpcClient

    port = free_port()
    command = with_option(dockerfile_instruction("CMD"), "-p", str(port))
    health = with_option(compose()["services"]["code-location"]["healthcheck"]["test"][1:], "-p", str(port))
    log = tmp_path / "code-server.log"
    with process(command, env, tmp_path, log) as server:
        try:
            deadline = time.monotonic() + 120
            while subprocess.run([str(BIN / health[0]), *health[1:]], capture_output=True).returncode != 0:
                assert server.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            yield port
        finally:
            with contextlib.suppress(Exception):
                DagsterGrpcClient(port=port, host="127.0.0.1").shutdown_server()


# ---------------------------------------------------------------------------------------------
# (a) the instances


def test_the_docker_instance_loads_with_the_docker_run_launcher_the_production_storage_and_queue(tmp_path, monkeypatch, docker_library, instance_db):
    """deploy/docker/dagster.yaml opens on PostgreSQL with PostgresInstanceStorage and builds its
    DockerRunLauncher; constructing the launcher needs no Docker engine (it asks for one only to
    launch a run), so this is the launcher the daemon would use."""
    from dagster_docker import DockerRunLauncher

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", instance_db)
    with dg.DagsterInstance.from_config(str(docker_home(tmp_path))) as instance:
        storage = instance.get_ref().storage_data
        assert storage is not None and storage.class_name == "PostgresInstanceStorage"
        assert instance.get_runs_count() == 0  # its tables were made in the database
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["migration_assets"]
        assert {"DAGSTER_POSTGRES_URL", "DATABASE_URL"} <= set(launcher.env_vars)
        queue = instance.get_concurrency_config().run_queue_config
    production = load_yaml(PRODUCTION_INSTANCE)
    assert queue is not None and queue.max_concurrent_runs == production["run_queue"]["max_concurrent_runs"]
    assert list(queue.tag_concurrency_limits) == production["run_queue"]["tag_concurrency_limits"]
    assert load_yaml(DOCKER / "dagster.yaml")["storage"] == production["storage"]


def test_the_helm_charts_instance_loads_its_storage_and_queue_and_validates_the_k8s_run_launcher(tmp_path, monkeypatch, k8s_library, instance_db):
    """The instance the chart writes from values.yaml (``chart_instance``; its database host,
    name and user swapped for the local server's, as ``helm --set`` would) opens its stock
    PostgreSQL storages with psycopg2 and queues runs as deploy/postgres does. Its run launcher's
    config is valid for K8sRunLauncher, but constructing one loads the in-cluster Kubernetes
    config, and there is no cluster here: that is where this test stops, and it says so."""
    import kubernetes.config
    from dagster._config import process_config, resolve_to_config_type
    from dagster_k8s import K8sRunLauncher

    url = make_url(instance_db)
    values = load_yaml(K8S / "values.yaml")
    values["postgresql"].update(
        postgresqlHost=url.host, postgresqlUsername=url.username, postgresqlDatabase=url.database, service={"port": url.port or 5432}
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    rendered = chart_instance(values)
    (home / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    for key, value in {**chart_pod_env(home), "DAGSTER_PG_PASSWORD": url.password or ""}.items():
        monkeypatch.setenv(key, value)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.get_ref().run_storage_data
        assert storage is not None and storage.class_name == "PostgresRunStorage"
        assert instance.get_runs_count() == 0  # its tables were made in the database, over psycopg2
        queue = instance.get_concurrency_config().run_queue_config
        launcher_data = instance.get_ref().run_launcher_data
        assert launcher_data is not None and (launcher_data.module_name, launcher_data.class_name) == ("dagster_k8s", "K8sRunLauncher")
        checked = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), launcher_data.config_dict)
        assert checked.success, checked.errors
        assert checked.value["env_secrets"] == ["migration-assets-env"] and checked.value["load_incluster_config"] is True
        with pytest.raises(kubernetes.config.ConfigException, match="(?i)service host/port is not set"):
            instance.run_launcher  # noqa: B018 - built on first use: needs a cluster
    production = load_yaml(PRODUCTION_INSTANCE)["run_queue"]
    assert queue is not None and queue.max_concurrent_runs == production["max_concurrent_runs"]
    assert list(queue.tag_concurrency_limits) == production["tag_concurrency_limits"]
    assert rendered["run_storage"]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


# ---------------------------------------------------------------------------------------------
# (b) the executors


@pytest.mark.parametrize(("name", "module", "attribute", "run_config"), [
    ("docker", "dagster_docker", "docker_executor", DOCKER / "run_config.yaml"),
    ("k8s", "dagster_k8s", "k8s_job_executor", K8S / "run_config.yaml"),
])  # fmt: skip
def test_the_migrate_job_takes_each_distributed_executor_and_its_launchpad_config(name, module, attribute, run_config):
    require(module)
    from migration_assets.definitions import defs

    executor = executor_named(name)
    assert executor is getattr(importlib.import_module(module), attribute)
    job = with_fields(defs, executor=executor).resolve_job_def("migrate")  # the code location, with this executor
    assert job.executor_def is executor
    checked = dg.validate_run_config(job, load_yaml(run_config))
    assert checked["execution"][executor.name]["max_concurrent"] == 2
    with pytest.raises(dg.DagsterInvalidConfigError, match="unexpected config entry"):
        dg.validate_run_config(job, {"execution": {"config": {"max_concurent": 2}}})


def test_the_executor_is_chosen_by_migration_executor(monkeypatch):
    monkeypatch.delenv(EXECUTOR_VARIABLE, raising=False)
    assert executor_from_env() is dg.in_process_executor  # unset: as today
    monkeypatch.setenv(EXECUTOR_VARIABLE, "multiprocess")
    assert executor_from_env() is dg.multiprocess_executor
    monkeypatch.setenv(EXECUTOR_VARIABLE, "celery")
    with pytest.raises(ValueError, match="MIGRATION_EXECUTOR='celery' names no executor: use one of in_process, multiprocess, docker, k8s"):
        executor_from_env()


def test_a_distributed_executor_without_its_library_says_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # as if dagster-k8s were not installed
    with pytest.raises(
        ImportError, match=r"MIGRATION_EXECUTOR=k8s needs dagster-k8s, which is not installed: pip install 'migration-assets\[deploy\]'"
    ):
        executor_named("k8s")


def test_the_code_location_takes_its_executor_from_migration_executor(k8s_library):
    """Once migration_assets/definitions.py passes ``executor_from_env()`` as its executor: until
    then this test skips (and fails with MIGRATION_REQUIRE_DEPLOY=1)."""
    from migration_assets import definitions

    if "executor_from_env" not in Path(definitions.__file__).read_text():
        message = "migration_assets/definitions.py does not take its executor from executors.executor_from_env() yet"
        if REQUIRE_DEPLOY:
            pytest.fail(message)
        pytest.skip(message)
    script = "from migration_assets.definitions import defs; print(defs.resolve_job_def('migrate').executor_def.name)"
    for chosen, expected in {"k8s": "k8s", "": "in_process"}.items():
        env = {**os.environ, EXECUTOR_VARIABLE: chosen}
        shown = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert shown.stdout.strip() == expected


# ---------------------------------------------------------------------------------------------
# (c) the Compose file, the instance and the workspace agree


def test_the_workspace_names_the_code_location_service_on_the_port_and_name_the_image_serves():
    services = compose()["services"]
    (entry,) = load_yaml(DOCKER / "workspace.yaml")["load_from"]
    server = entry["grpc_server"]
    command = dockerfile_instruction("CMD")
    assert server["host"] == "code-location" and "build" in services["code-location"] and "command" not in services["code-location"]
    assert str(server["port"]) == option(command, "-p") == option(services["code-location"]["healthcheck"]["test"], "-p")
    assert server["location_name"] == option(command, "--location-name") == LOCATION


def test_the_webserver_and_daemon_read_the_workspace_and_instance_the_image_holds():
    services = compose()["services"]
    home = dockerfile_env()["DAGSTER_HOME"]
    assert "COPY deploy/docker/dagster.yaml deploy/docker/workspace.yaml ${DAGSTER_HOME}/" in (DOCKER / "Dockerfile").read_text()
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    for name in ("webserver", "daemon"):
        assert option(services[name]["command"], "-w") == f"{home}/workspace.yaml"


def test_every_variable_the_instance_and_the_run_launcher_read_is_set_for_webserver_daemon_and_code_location():
    instance = load_yaml(DOCKER / "dagster.yaml")
    read = set(re.findall(r"env: (\w+)", (DOCKER / "dagster.yaml").read_text())) | set(instance["run_launcher"]["config"]["env_vars"])
    services = compose()["services"]
    for name in ("webserver", "daemon", "code-location"):
        assert read <= set(services[name]["environment"]), f"{name} lacks {read - set(services[name]['environment'])}"
    # the code location's jobs and the runs' containers must choose the same executor
    assert services["code-location"]["environment"][EXECUTOR_VARIABLE] == services["daemon"]["environment"][EXECUTOR_VARIABLE] == "in_process"
    chosen = compose({"POSTGRES_PASSWORD": "secret", EXECUTOR_VARIABLE: "docker"})["services"]
    assert chosen["code-location"]["environment"][EXECUTOR_VARIABLE] == chosen["daemon"]["environment"][EXECUTOR_VARIABLE] == "docker"


def test_the_instance_and_the_target_are_two_databases_of_the_compose_postgresql():
    services = compose()["services"]
    env = services["daemon"]["environment"]
    instance, target = make_url(env["DAGSTER_POSTGRES_URL"]), make_url(env["DATABASE_URL"])
    assert instance.host == target.host == "postgresql" in services
    assert instance.database == services["postgresql"]["environment"]["POSTGRES_DB"]
    created = re.findall(r"CREATE DATABASE (\w+);", "".join(path.read_text() for path in (DOCKER / "postgres-init").glob("*.sql")))
    assert created == [target.database] and target.database != instance.database
    assert "./postgres-init:/docker-entrypoint-initdb.d:ro" in services["postgresql"]["volumes"]
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD: set POSTGRES_PASSWORD in deploy/docker/.env"):
        compose({})  # no password, no deployment: Compose refuses to start


def test_runs_containers_join_the_compose_network_and_share_its_volumes_at_the_same_paths():
    document = compose()
    services = document["services"]
    launcher = load_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]
    networks = {key: network["name"] for key, network in document["networks"].items()}
    assert launcher["network"] in networks.values()
    for name, service in services.items():
        assert [networks[key] for key in service["networks"]] == [launcher["network"]], name
    volume_names = {key: volume["name"] for key, volume in document["volumes"].items()}
    run_mounts = named_volume_mounts(launcher["container_kwargs"]["volumes"])
    assert set(run_mounts) <= set(volume_names.values())
    env = services["daemon"]["environment"]
    assert run_mounts["migration_assets_source"] == env["MIGRATION_SOURCE_DIR"]
    assert run_mounts["migration_assets_backups"] == env["MIGRATION_BACKUP_DIR"]
    assert f"{dockerfile_env()['DAGSTER_HOME']}/storage" == run_mounts["migration_assets_dagster_storage"]
    for name in ("code-location", "webserver"):  # the same volumes at the same paths as in the runs
        mounts = {volume_names[key]: path for key, path in named_volume_mounts(services[name]["volumes"]).items()}
        assert mounts and all(run_mounts[volume] == path for volume, path in mounts.items()), name
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]


def test_every_service_runs_the_one_image_that_runs_are_launched_in():
    services = compose()["services"]
    image = services["code-location"]["image"]
    assert services["code-location"]["environment"]["DAGSTER_CURRENT_IMAGE"] == image
    assert {services[name]["image"] for name in ("code-location", "webserver", "daemon")} == {image}
    build = services["code-location"]["build"]
    assert (DOCKER / build["context"]).resolve() == REPO and (REPO / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert "image" not in load_yaml(DOCKER / "dagster.yaml")["run_launcher"]["config"]  # the code location names it


# ---------------------------------------------------------------------------------------------
# (d) the image's entry point runs the code location


def test_the_images_command_serves_the_code_location_and_its_jobs(tmp_path, instance_db, postgres_url):
    """The Dockerfile's CMD, run here with this virtualenv's ``dagster`` on a free port and the
    code location service's environment: the Compose health check (also the chart's readiness
    probe) passes, and Dagster loads the location from it over gRPC, with its jobs and image."""
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._grpc.client import DagsterGrpcClient

    command = dockerfile_instruction("CMD")
    assert command[:3] == ["dagster", "code-server", "start"] and option(command, "-m") == "migration_assets.definitions"
    assert not re.search(r"^ENTRYPOINT", (DOCKER / "Dockerfile").read_text(), re.M)  # launchers replace the command whole
    env = {**service_env("code-location", instance_db, postgres_url, tmp_path), "DAGSTER_HOME": str(docker_home(tmp_path))}
    with code_server(env, tmp_path) as port, dg.instance_for_test() as instance:
        served = json.loads(DagsterGrpcClient(port=port, host="127.0.0.1").get_current_image())
        assert served["current_image"] == env["DAGSTER_CURRENT_IMAGE"]
        origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=port, location_name=LOCATION)
        with origin.create_location(instance) as location:
            (repository,) = location.get_repositories().values()
            assert {job.name for job in repository.get_all_jobs()} >= JOBS
            assert location.container_image == "migration-assets:local"


def test_a_run_launched_in_the_compose_webserver_goes_through_the_queue_to_the_docker_run_launcher(
    tmp_path, docker_library, instance_db, postgres_url
):
    """The webserver's and the daemon's Compose commands, on the docker instance and a workspace
    pointing at the image's command running here: a launch from the UI is queued, the daemon takes
    it off the queue and hands it to DockerRunLauncher, which resolves the image and every
    variable it passes on, then asks for the Docker engine. There is none on this machine, so the
    run fails there, and the test checks that it failed there and for that reason only."""
    services = compose()["services"]
    code_env = {**service_env("code-location", instance_db, postgres_url, tmp_path), "DAGSTER_HOME": str(docker_home(tmp_path / "code"))}
    with code_server(code_env, tmp_path) as port:
        (entry,) = load_yaml(DOCKER / "workspace.yaml")["load_from"]
        workspace = {"load_from": [{"grpc_server": {**entry["grpc_server"], "host": "127.0.0.1", "port": port}}]}
        home = docker_home(tmp_path / "ui", workspace)
        web_port = free_port()

        def here(command: list[str]) -> list[str]:
            return with_option(command, "-w", str(home / "workspace.yaml"))

        webserver = with_option(here(services["webserver"]["command"]), "-p", str(web_port))
        env = {**service_env("webserver", instance_db, postgres_url, tmp_path), "DAGSTER_HOME": str(home)}
        daemon_env = {**service_env("daemon", instance_db, postgres_url, tmp_path), "DAGSTER_HOME": str(home)}
        with (
            process(webserver, env, tmp_path, tmp_path / "webserver.log"),
            process(here(services["daemon"]["command"]), daemon_env, tmp_path, tmp_path / "daemon.log"),
        ):
            url = f"http://127.0.0.1:{web_port}/graphql"
            wait_for_location(url, tmp_path / "webserver.log")
            selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": "validate_only"}
            run = graphql(url, LAUNCH, {"params": {"selector": selector}})["launchRun"]
            assert run["__typename"] == "LaunchRunSuccess", run
            run_id = run["run"]["runId"]
            status, errors = wait_for_run_end(url, run_id, tmp_path / "daemon.log")
    assert status == "FAILURE"
    (error,) = errors
    assert "Error while fetching server API version" in error["message"], error  # docker's: no engine to talk to
    stack = "".join(error["stack"])
    assert "in _get_client" in stack and "docker.client.from_env()" in stack  # after the image and the variables it passes on


LAUNCH = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

WORKSPACE = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"

RUN = """
query ($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      status
      eventConnection { events { __typename ... on MessageEvent { message } ... on EngineEvent { error { message stack } } } }
    }
  }
}"""


def wait_for_location(url: str, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 180
    while True:
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            entries = graphql(url, WORKSPACE)["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def wait_for_run_end(url: str, run_id: str, log: Path) -> tuple[str, list[dict[str, Any]]]:
    """The run's final status and the errors of its engine events."""
    deadline = time.monotonic() + 120
    while True:
        run = graphql(url, RUN, {"runId": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run["status"], [event["error"] for event in run["eventConnection"]["events"] if event.get("error")]
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']}\n{log.read_text()[-3000:]}"
        time.sleep(1)


# ---------------------------------------------------------------------------------------------
# (e) the Helm values


def test_the_helm_values_serve_the_image_as_the_compose_code_location_does():
    values = load_yaml(K8S / "values.yaml")
    deployment = user_deployment(values)
    command = dockerfile_instruction("CMD")
    assert values["dagster-user-deployments"]["enabled"] and deployment["image"]["repository"] and deployment["image"]["tag"]
    # the chart runs `dagster code-server start -h 0.0.0.0 -p <port>` followed by codeServerArgs
    assert ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(deployment["port"]), *deployment["codeServerArgs"]] == command
    (server,) = values["dagsterWebserver"]["workspace"]["servers"]
    assert values["dagsterWebserver"]["workspace"]["enabled"] and server["host"] == deployment["name"] and server["port"] == deployment["port"]
    assert server["name"] == option(deployment["codeServerArgs"], "--location-name") == LOCATION


def test_the_helm_values_launch_runs_as_kubernetes_jobs_with_the_env_and_volumes_the_jobs_need(k8s_library):
    import kubernetes.client
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

    def model(kind: type[Any], data: dict[str, Any]) -> Any:  # a typo in a key fails here, as in the cluster
        return k8s_model_from_dict(kind, k8s_snake_case_dict(kind, data))

    values = load_yaml(K8S / "values.yaml")
    deployment = user_deployment(values)
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert {"name": "migration-assets-env"} in launcher["config"]["k8sRunLauncher"]["envSecrets"]
    assert {"name": "migration-assets-env"} in deployment["envSecrets"]  # DATABASE_URL, for the code location's sensors too
    assert deployment["includeConfigInLaunchedRuns"]["enabled"]  # runs and their steps get the location's env and volumes
    assert deployment["env"][EXECUTOR_VARIABLE] == "k8s" and executor_named(deployment["env"][EXECUTOR_VARIABLE]).name == "k8s"
    volumes = [model(kubernetes.client.V1Volume, volume) for volume in deployment["volumes"]]
    mounts = {mount.mount_path: mount for mount in (model(kubernetes.client.V1VolumeMount, data) for data in deployment["volumeMounts"])}
    assert {deployment["env"]["MIGRATION_SOURCE_DIR"], deployment["env"]["MIGRATION_BACKUP_DIR"], "/opt/dagster/dagster_home/storage"} == set(mounts)
    assert mounts[deployment["env"]["MIGRATION_SOURCE_DIR"]].read_only
    claim = model(kubernetes.client.V1PersistentVolumeClaim, load_yaml(K8S / "storage.yaml"))
    assert [volume.persistent_volume_claim.claim_name for volume in volumes] == [claim.metadata.name]
    assert claim.spec.access_modes == ["ReadWriteMany"]  # the code location, runs and steps may sit on different nodes
    webserver_mounts = [model(kubernetes.client.V1VolumeMount, data) for data in values["dagsterWebserver"]["volumeMounts"]]
    assert [(mount.mount_path, mount.sub_path) for mount in webserver_mounts] == [("/opt/dagster/dagster_home/storage", "dagster-storage")]
    assert mounts["/opt/dagster/dagster_home/storage"].sub_path == "dagster-storage"


def test_the_helm_values_keep_the_instance_in_an_external_postgresql_with_the_production_queue():
    values = load_yaml(K8S / "values.yaml")
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    production = load_yaml(PRODUCTION_INSTANCE)["run_queue"]
    assert queue["maxConcurrentRuns"] == production["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == production["tag_concurrency_limits"]
