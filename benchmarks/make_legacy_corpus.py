#!/usr/bin/env python3
# A copy of the team's shared tool (shared/corpus/make_legacy_corpus.py), so that a clean clone can use it.
"""Write a realistic, deterministic legacy-data corpus for benchmarks and end-to-end tests.

    python make_legacy_corpus.py OUT_DIR [--files 10000] [--seed 7]

The corpus mixes the formats a legacy content store tends to hold: JSON objects, JSON
exports (arrays), JSON Lines, Markdown with YAML frontmatter (and without), plain text in
UTF-8 and Latin-1, CSV exports (comma and semicolon, UTF-8 and Latin-1), plus files of
formats nobody asked for. About 3% of the records are broken in the ways legacy data is
broken. OUT_DIR/../<name>.manifest.json says, per file, what a correct migration does:

    expect  valid    every record in it is migrated
            invalid  nothing from it is loaded; it is reported with a reason
            skip     not a supported format; reported as skipped
    records how many records a valid file holds

Only the Python standard library is used.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import random
from pathlib import Path

WORDS = (
    "data system migration legacy record archive content article note report customer "
    "order invoice product service team project release feature issue review design "
    "network server storage cloud cluster pipeline schema table index query cache "
    "latency throughput backup restore policy security access audit token account "
    "user profile session payment refund shipment warehouse inventory supplier region "
    "market strategy budget forecast revenue margin growth quarter annual monthly "
    "weekly daily meeting summary decision action owner deadline status risk plan "
    "the a an of to in for on with by from at as is was are be this that these "
    "which when where how why what who new old first last next best more most "
    "simple robust fast slow large small open closed public private internal "
    "café naïve résumé façade über straße  東京 データ 移行 данные миграция"
).split()
CATEGORIES = ["technology", "finance", "operations", "support", "research", "marketing", "legal"]
TYPES = ["article", "note", "faq", "ticket", "memo"]


def sentence(rng: random.Random, lo: int = 6, hi: int = 18) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    return " ".join(words).capitalize() + "."


def body(rng: random.Random) -> str:
    # log-normal sizes: most records are short, a few are long articles
    n = max(1, int(rng.lognormvariate(2.2, 0.9)))
    paras = []
    while n > 0:
        k = min(n, rng.randint(2, 6))
        paras.append(" ".join(sentence(rng) for _ in range(k)))
        n -= k
    return "\n\n".join(paras)


def title(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))).title()


def date(rng: random.Random) -> str:
    y, m, d = rng.randint(2009, 2024), rng.randint(1, 12), rng.randint(1, 28)
    return f"{y:04d}-{m:02d}-{d:02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"


def tags(rng: random.Random) -> list[str]:
    return sorted({rng.choice(WORDS[:60]) for _ in range(rng.randint(0, 4))})


def record(rng: random.Random, n: int) -> dict:
    rec = {
        "id": f"legacy-{n}" if rng.random() < 0.8 else n,
        "title": title(rng),
        "content": body(rng),
        "url": f"https://example.com/{rng.choice(CATEGORIES)}/{n}",
        "type": rng.choice(TYPES),
        "created_at": date(rng),
        "tags": tags(rng),
        "category": rng.choice(CATEGORIES),
        "metadata": {"author": title(rng), "source": rng.choice(["blog", "wiki", "crm", "helpdesk"])},
    }
    for key in ("url", "tags", "category", "metadata", "type"):
        if rng.random() < 0.1:
            del rec[key]  # legacy records are rarely complete
    return rec


class Writer:
    def __init__(self, root: Path, rng: random.Random, seed: int):
        # ids are unique across corpora of different seeds, as a legacy system's ids are
        self.root, self.rng, self.files, self.next_id = root, rng, {}, seed * 10_000_000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def put(self, rel: str, data: bytes, expect: str, records: int = 0, fmt: str = "") -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[rel] = {"format": fmt or path.suffix.lstrip("."), "expect": expect, "records": records}

    def folder(self) -> str:
        rng = self.rng
        top = rng.choice(["blog", "wiki", "crm", "helpdesk", "exports", "old site"])
        return f"{top}/{rng.randint(2010, 2024)}" if rng.random() < 0.5 else top

    def json_object(self, i: int) -> None:
        rec = record(self.rng, self.new_id())
        broken = self.rng.random()
        if broken < 0.02:
            text = json.dumps(rec)[: self.rng.randint(5, 40)]  # truncated export
            self.put(f"{self.folder()}/item-{i}.json", text.encode(), "invalid")
        elif broken < 0.03:
            rec.pop("title"), rec.pop("content")  # nothing to migrate
            self.put(f"{self.folder()}/item-{i}.json", json.dumps(rec).encode(), "invalid")
        else:
            self.put(f"{self.folder()}/item-{i}.json", json.dumps(rec, ensure_ascii=self.rng.random() < 0.5, indent=2).encode(), "valid", 1)

    def json_export(self, i: int) -> None:
        recs = [record(self.rng, self.new_id()) for _ in range(self.rng.randint(5, 50))]
        if self.rng.random() < 0.5:
            self.put(f"exports/export-{i}.json", json.dumps(recs).encode(), "valid", len(recs))
        else:
            lines = "\n".join(json.dumps(r) for r in recs) + "\n"
            self.put(f"exports/export-{i}.jsonl", lines.encode(), "valid", len(recs))

    def markdown(self, i: int) -> None:
        rng, rec = self.rng, record(self.rng, self.new_id())
        text = f"# {rec['title']}\n\n{rec['content']}\n\n- {sentence(rng)}\n- {sentence(rng)}\n"
        style = rng.random()
        if style < 0.7:
            tag_line = f"[{', '.join(rec.get('tags', []))}]" if rng.random() < 0.5 else ", ".join(rec.get("tags", []))
            meta = f"---\ntitle: \"{rec['title']}\"\nurl: {rec.get('url', '')}\ncategory: {rec.get('category', '')}\ntags: {tag_line}\ndate: {rec['created_at'][:10]}\n---\n\n"
            text = meta + text
        elif style < 0.72:
            text = "---\ntitle: [unclosed\ntags: {a: \n---\n\n" + text  # frontmatter that is not YAML
            self.put(f"{self.folder()}/page-{i}.md", text.encode(), "invalid")
            return
        if rng.random() < 0.2:
            text = text.replace("\n", "\r\n")
        data = text.encode()
        if rng.random() < 0.05:
            data = b"\xef\xbb\xbf" + data  # UTF-8 byte order mark
        self.put(f"{self.folder()}/page-{i}.md", data, "valid", 1)

    def text(self, i: int) -> None:
        rng = self.rng
        content = body(rng)
        r = rng.random()
        if r < 0.1:
            data = (content + " Café crème, naïve façade.").encode("latin-1", "replace")
        elif r < 0.12:
            self.put(f"{self.folder()}/empty-{i}.txt", b"", "invalid")
            return
        else:
            data = content.encode()
        self.put(f"{self.folder()}/{title(rng).lower().replace(' ', '_')}-{i}.txt", data, "valid", 1)

    def csv_export(self, i: int) -> None:
        rng = self.rng
        recs = [record(rng, self.new_id()) for _ in range(rng.randint(20, 200))]
        delim = ";" if rng.random() < 0.3 else ","
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=delim, lineterminator="\r\n" if rng.random() < 0.5 else "\n")
        w.writerow(["id", "title", "content", "url", "type", "created_at", "tags", "category"])
        for r in recs:
            w.writerow([r["id"], r["title"], r["content"], r.get("url", ""), r.get("type", ""), r["created_at"], "|".join(r.get("tags", [])), r.get("category", "")])
        enc = "latin-1" if rng.random() < 0.2 else "utf-8"
        self.put(f"exports/table-{i}.csv", buf.getvalue().encode(enc, "replace"), "valid", len(recs))

    def other(self, i: int) -> None:
        rng = self.rng
        kind = rng.choice(["png", "html", "xml", "ds"])
        if kind == "png":
            self.put(f"{self.folder()}/image-{i}.png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(512), "skip")
        elif kind == "html":
            self.put(f"{self.folder()}/old-{i}.html", f"<html><body><p>{sentence(rng)}</p></body></html>".encode(), "skip")
        elif kind == "xml":
            self.put(f"{self.folder()}/feed-{i}.xml", f"<feed><entry>{sentence(rng)}</entry></feed>".encode(), "skip")
        else:
            self.put(f"{self.folder()}/.DS_Store", rng.randbytes(64), "skip", fmt="DS_Store")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    w = Writer(args.out, rng, args.seed)
    makers = [(0.36, w.json_object), (0.04, w.json_export), (0.30, w.markdown), (0.18, w.text), (0.08, w.csv_export), (0.04, w.other)]
    for i in range(args.files):
        r, acc = rng.random(), 0.0
        for share, make in makers:
            acc += share
            if r < acc:
                make(i)
                break
        else:
            makers[0][1](i)
    totals = {
        "files": len(w.files),
        "valid_files": sum(f["expect"] == "valid" for f in w.files.values()),
        "invalid_files": sum(f["expect"] == "invalid" for f in w.files.values()),
        "skipped_files": sum(f["expect"] == "skip" for f in w.files.values()),
        "records": sum(f["records"] for f in w.files.values()),
        "bytes": sum((args.out / p).stat().st_size for p in w.files),
    }
    manifest = args.out.parent / f"{args.out.name}.manifest.json"
    manifest.write_text(json.dumps({"seed": args.seed, "totals": totals, "files": w.files}, indent=1, sort_keys=True))
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
