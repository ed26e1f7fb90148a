#!/usr/bin/env python3
"""Our migration against the floor, on the same corpus, in one process tree.

    .venv/bin/python benchmarks/bench_migrate.py [--files 10000] [--backend sqlite|postgresql|both]
                                                 [--parallel] [--workers 2] [--rerun]

Generates the shared corpus (cached under --workdir), runs ``limit.py`` (the bare parse and
insert, 2 workers), then ``python -m migration_assets.cli migrate`` into each backend, and
prints wall time, files/s, records/s, peak RSS, the load stage's records/s and the ratio to
the floor. PostgreSQL runs go into a fresh schema of ``--postgres-url``, dropped afterwards.
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
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Run ``command``; return (wall seconds, peak RSS MB and CPU seconds from wait4's rusage,
    stdout). The CPU seconds (user + system) include the worker processes the command waited
    for: on a shared machine they move less from run to run than the wall time."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, out.read()


def corpus(workdir: Path, files: int, seed: int) -> tuple[Path, dict]:
    root = workdir / f"corpus-{files}-{seed}"
    manifest = workdir / f"corpus-{files}-{seed}.manifest.json"
    if not manifest.exists():
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, str(HERE / "make_legacy_corpus.py"), str(root), "--files", str(files), "--seed", str(seed)], check=True)
    return root, json.loads(manifest.read_text())["totals"]


def postgres_schema(url: str) -> tuple[str, Callable[[], None]]:
    from sqlalchemy import create_engine, text

    from migration_assets.store.database import dispose_engine, normalise_url

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(url))
    with admin.begin() as conn:
        conn.execute(text(f'create schema "{schema}"'))
    target = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"

    def drop() -> None:
        dispose_engine(target)
        with admin.begin() as conn:
            conn.execute(text(f'drop schema "{schema}" cascade'))

    return target, drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    ap.add_argument("--parallel", action="store_true", help="migrate with --parallel")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rerun", action="store_true", help="also time a second, unchanged run with --incremental")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "migration-assets-bench")
    ap.add_argument("--postgres-url", default=os.environ.get("MIGRATION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    source, totals = corpus(args.workdir, args.files, args.seed)
    print(f"corpus: {totals['files']} files, {totals['records']} valid records, {totals['bytes'] / 1e6:.0f} MB ({source})")

    floor_db = args.workdir / "floor.db"
    floor_wall, floor_rss, floor_cpu, floor_out = run_measured(
        [sys.executable, str(HERE / "limit.py"), str(source), str(floor_db), "--workers", str(args.workers)]
    )
    print(f"floor (limit.py --workers {args.workers}): {floor_wall:.2f} s, {floor_cpu:.2f} CPU-s, peak RSS {floor_rss:.0f} MB  {floor_out.strip()}")

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    rows = []
    for backend in backends:
        run_dir = args.workdir / f"run-{backend}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        drop = None
        if backend == "sqlite":
            url = f"sqlite:///{run_dir / 'target.db'}"
        else:
            url, drop = postgres_schema(args.postgres_url)
        env = {**os.environ, "DAGSTER_HOME": str(run_dir / "dagster_home"), "DATABASE_URL": url}
        (run_dir / "dagster_home").mkdir()
        (run_dir / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        command = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(source), "--backup", str(run_dir / "backup")]
        if args.parallel:
            command += ["--parallel", "--max-workers", str(args.workers)]
        try:
            passes = [("first run", *run_measured(command, env))]
            report = json.loads((run_dir / "backup" / "migration_report.json").read_text())
            if args.rerun:
                passes.append(("unchanged incremental rerun", *run_measured([*command, "--incremental"], env)))
        finally:
            if drop:
                drop()
        records = report["totals"]["records"]["found"]
        ingest = report["stages"]["ingest_records"]  # parse, validation and writes, overlapped
        for label, wall, rss, cpu, _ in passes:
            rows.append(
                {
                    "backend": backend,
                    "pass": label,
                    "wall_s": round(wall, 2),
                    "ratio_to_floor": round(wall / floor_wall, 2),
                    "cpu_s": round(cpu, 2),
                    "cpu_ratio_to_floor": round(cpu / floor_cpu, 2),
                    "files_per_s": round(totals["files"] / wall),
                    "records_per_s": round(records / wall),
                    "peak_rss_mb": round(rss),
                    "ingest_records_per_s": round(records / ingest["seconds"]) if label == "first run" and ingest["seconds"] else None,
                    "stage_seconds": {n: f["seconds"] for n, f in report["stages"].items() if isinstance(f, dict) and "seconds" in f}
                    if label == "first run"
                    else None,
                    # the run's own process (the peak RSS above is the largest process, a forked worker included)
                    "stage_peak_rss_mb": {n: f.get("peak_rss_mb") for n, f in report["stages"].items() if isinstance(f, dict) and "seconds" in f}
                    if label == "first run"
                    else None,
                    "parse_worker_peak_rss_mb": ingest.get("worker_peak_rss_mb") if label == "first run" else None,
                }
            )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
