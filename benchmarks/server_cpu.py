"""Run a command and print its wall time, its own CPU-seconds (children included) and the CPU-seconds
every PostgreSQL server process spent meanwhile (polled from /proc every 0.2 s), so that a
migration into PostgreSQL is compared with one into SQLite by all the CPU it costs, not only ours.

    python benchmarks/server_cpu.py .venv/bin/python -m migration_assets.cli migrate --source C --backup B --quiet

Linux only; counts every postgres process on the machine, so run it on a quiet one.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[str, float]:
    """CPU-seconds so far of every postgres process, by pid."""
    found: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as comm, open(f"/proc/{pid}/stat") as stat:
                name, fields = comm.read().strip(), stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if name.startswith("postgres"):
            found[pid] = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    return found


def main() -> int:
    before = postgres_cpu()
    last = dict(before)
    started = time.perf_counter()
    process = subprocess.Popen(sys.argv[1:])
    while process.poll() is None:
        last.update(postgres_cpu())  # a backend that exits keeps its last reading
        time.sleep(0.2)
    wall = time.perf_counter() - started
    ours = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = sum(cpu - before.get(pid, 0.0) for pid, cpu in last.items())
    print(f"wall {wall:.1f} s, command {ours.ru_utime + ours.ru_stime:.1f} CPU-s, postgres {server:.1f} CPU-s", file=sys.stderr)
    return process.returncode


if __name__ == "__main__":
    raise SystemExit(main())
