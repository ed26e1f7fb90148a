#!/usr/bin/env python3
"""Scaling on this machine: the standard corpus into PostgreSQL with 1 and 2 concurrent waves
(``migrate --waves K``: Dagster runs through the run queue, PostgreSQL instance storage) and 1
and 2 parse workers, beside the same migration into SQLite and the floor, in one run.

    .venv/bin/python benchmarks/bench_scale.py [--files 10000] [--waves 1 2] [--workers 1 2] [--deployed]

With ``--deployed`` a dagster-daemon is running for the instance before a case of several waves
starts (as in a deployment); without it, the CLI starts one for its runs, and that start-up is
counted.

For each case: wall time, and the CPU-seconds of the whole machine meanwhile (/proc/stat: our
processes, the Dagster daemon and run processes, and the PostgreSQL server), of which the
PostgreSQL server's. Every case starts on an empty target (a fresh schema) and a fresh instance
database; the machine should be otherwise quiet. Prints one JSON line per case, then the
figures the README's model uses: per-file CPU cost, and the rate at which PostgreSQL took
the writes.

``--without-search-index`` adds one more case: PostgreSQL, one wave, into a target whose
full-text column (``content_items.search_vector``, a stored ``to_tsvector`` with a GIN index,
migration 0009) was dropped after the schema was created. Not a configuration we support (search
needs it): it shows what PostgreSQL's text-search parser costs the server beside the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_migrate import corpus, postgres_schema  # noqa: E402
from server_cpu import postgres_cpu  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU-seconds the whole machine has been busy (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / TICK


def measured(command: list[str], env: dict[str, str]) -> dict[str, float]:
    machine, before = machine_cpu(), postgres_cpu()
    last = dict(before)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        while process.poll() is None:
            last.update(postgres_cpu())
            time.sleep(0.2)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            out.seek(0)
            raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{out.read()[-3000:]}")
    server = sum(cpu - before.get(pid, 0.0) for pid, cpu in last.items())
    return {"wall_s": round(wall, 2), "machine_cpu_s": round(machine_cpu() - machine, 1), "postgres_cpu_s": round(server, 1)}


def instance_database(url: str) -> tuple[str, object]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from migration_assets.store.database import normalise_url

    name = f"bench_dagster_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'drop database "{name}" with (force)'))

    return make_url(url).set(drivername="postgresql", database=name).render_as_string(hide_password=False), drop


def without_search_index(url: str) -> None:
    """Create the target's schema, then drop its full-text column (and so its GIN index)."""
    from sqlalchemy import text

    from migration_assets.store.database import create_target_engine, upgrade_schema

    engine = create_target_engine(url)
    upgrade_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("alter table content_items drop column search_vector"))
    engine.dispose()


def start_daemon(home: Path, env: dict[str, str]) -> subprocess.Popen:
    """A dagster-daemon for the instance in ``home``, once its run queue has a heartbeat."""
    import dagster as dg

    from migration_assets.run_queue import daemon_running, workspace_file

    log = open(home / "bench-daemon.log", "ab")  # noqa: SIM115 - the daemon's, for its life
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace_file(home))], env=env, stdout=log, stderr=log
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith("DAGSTER")})
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 120
        while not daemon_running(instance):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit(f"the daemon did not start: see {home / 'bench-daemon.log'}")
            time.sleep(1)
    time.sleep(3)  # past its first ticks
    return daemon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--waves", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--write-connections", type=int, default=2)
    ap.add_argument("--deployed", action="store_true", help="a daemon already runs for the instance (not counted)")
    ap.add_argument("--without-search-index", action="store_true", help="also PostgreSQL, 1 wave, with search_vector dropped (what it costs)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "migration-assets-bench")
    ap.add_argument("--postgres-url", default=os.environ.get("MIGRATION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    source, totals = corpus(args.workdir, args.files, args.seed)
    print(f"corpus: {totals['files']} files, {totals['records']} valid records, {totals['bytes'] / 1e6:.0f} MB ({source})", flush=True)
    floor = measured([sys.executable, str(HERE / "limit.py"), str(source), str(args.workdir / "floor.db"), "--workers", "2"], dict(os.environ))
    (args.workdir / "floor.db").unlink(missing_ok=True)
    print(json.dumps({"case": "floor (limit.py --workers 2, SQLite)", **floor}), flush=True)

    cases = [("sqlite", 1, max(args.workers), True)] + [("postgresql", waves, workers, True) for waves in args.waves for workers in args.workers]
    if args.without_search_index:
        cases.append(("postgresql", 1, max(args.workers), False))
    rows = []
    for backend, waves, workers, search_index in cases:
        run_dir = args.workdir / f"scale-{backend}-{waves}w-{workers}p{'' if search_index else '-nosearch'}"
        shutil.rmtree(run_dir, ignore_errors=True)
        home = run_dir / "dagster_home"
        home.mkdir(parents=True)
        drops = []
        env = {**os.environ, "DAGSTER_HOME": str(home)}
        if backend == "sqlite":
            url = f"sqlite:///{run_dir / 'target.db'}"
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        else:
            url, drop = postgres_schema(args.postgres_url)
            instance_url, drop_instance = instance_database(args.postgres_url)
            drops += [drop, drop_instance]
            shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
            env["DAGSTER_POSTGRES_URL"] = instance_url
            if not search_index:
                without_search_index(url)
        env["DATABASE_URL"] = url
        command = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(run_dir / "backup"), "--quiet"]
        command += ["--parallel", "--max-workers", str(workers), "--write-connections", str(args.write_connections), "--waves", str(waves)]
        daemon = start_daemon(home, env) if args.deployed and waves > 1 else None
        try:
            figures = measured(command, env)
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(timeout=60)
            for drop in drops:
                drop()
        deployed = " (daemon running)" if daemon is not None else ""
        row = {
            "case": f"{backend}, {waves} wave(s){deployed}, {workers} worker(s){'' if search_index else ', no full-text index'}",
            "backend": backend,
            "waves": waves,
            "workers": workers,
            **figures,
        }
        row["files_per_s"] = round(totals["files"] / figures["wall_s"])
        row["machine_cpu_ms_per_file"] = round(1000 * figures["machine_cpu_s"] / totals["files"], 2)
        row["ratio_to_floor"] = round(figures["wall_s"] / floor["wall_s"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    sqlite = next(r for r in rows if r["backend"] == "sqlite")
    for row in rows[1:]:
        print(f"{row['case']}: {row['wall_s']} s = {row['wall_s'] / sqlite['wall_s']:.2f}x SQLite's {sqlite['wall_s']} s", flush=True)


if __name__ == "__main__":
    main()
