#!/usr/bin/env python3
# A copy of the team's shared tool (shared/bench/limit.py), so that a clean clone can use it.
"""Reference for the essential work of a migration, with nothing else around it.

    python bench/limit.py SOURCE_DIR DB_PATH [--workers N]

Reads every file, decodes it, parses JSON / JSONL / Markdown frontmatter / CSV / text,
hashes each record's content, and inserts one row per record into SQLite in one
transaction. No validation, no tracking, no orchestration: the floor on wall time that
the project's migration is held against. Prints one JSON line of figures.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse(path: str) -> list[tuple]:
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".jsonl", ".md", ".txt", ".csv"):
        return []
    with open(path, "rb") as fh:
        text = decode(fh.read())
    recs: list[dict] = []
    try:
        if ext == ".json":
            obj = json.loads(text)
            recs = obj if isinstance(obj, list) else [obj]
        elif ext == ".jsonl":
            recs = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif ext == ".csv":
            dialect = csv.Sniffer().sniff(text[:2048], delimiters=",;")
            recs = list(csv.DictReader(io.StringIO(text), dialect=dialect))
        elif ext == ".md":
            meta, content = {}, text
            if text.startswith("---"):
                end = text.find("\n---", 3)
                meta = yaml.load(text[3:end], Loader=LOADER) or {}
                content = text[end + 4 :]
            recs = [dict(meta, content=content)]
        else:
            recs = [{"title": os.path.basename(path), "content": text}]
    except Exception:
        return []
    rows = []
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            continue
        content = str(r.get("content") or "")
        title = str(r.get("title") or os.path.basename(path))
        if not content and not title:
            continue
        rows.append((f"{path}#{i}", title, content, hashlib.sha256(content.encode()).hexdigest(), json.dumps(r, default=str)))
    return rows


def main() -> None:
    src, db = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else 1
    t0 = time.perf_counter()
    paths = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs]
    if os.path.exists(db):
        os.remove(db)
    con = sqlite3.connect(db)
    con.execute("create table content_items (legacy_id text primary key, title text, content text, content_hash text, raw text)")
    n = 0
    with ProcessPoolExecutor(workers) if workers > 1 else _Serial() as pool:
        for rows in pool.map(parse, paths, chunksize=64):
            con.executemany("insert into content_items values (?,?,?,?,?)", rows)
            n += len(rows)
    con.commit()
    wall = time.perf_counter() - t0
    print(json.dumps({"files": len(paths), "records": n, "wall_s": round(wall, 3), "files_per_s": round(len(paths) / wall), "records_per_s": round(n / wall)}))


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def map(self, fn, it, chunksize=1):
        return map(fn, it)


if __name__ == "__main__":
    main()
