"""Embedding speed and search quality, every provider in one run on this machine.

Speed: chunks/s (wall and CPU) on knowledge chunks of the standard corpus (the shared
generator's, cut as a migration cuts them), for a plain ``SentenceTransformer.encode`` (batch
32, float32: the reference) and our ``minilm`` provider (bfloat16 weights, batches of like token
counts), taken in turns, twice; then the embedding stage of a migration over the same chunks with
the ``minilm`` provider in one process and in two worker processes; then the distilled static
model and the hashing embedder.

Quality: on the labeled set of ``migration_assets_tests/labeled_search.py``, the share of
paraphrase queries (no content word in common with their document) and of exact-name queries
whose document comes first, with hybrid search, per provider; the held-out paraphrases (written
after the ranking was chosen) apart.

    python benchmarks/bench_embeddings.py --chunks 256
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def cpu_seconds() -> float:
    """This process's CPU time and that of its children that have ended (worker pools)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def corpus_chunks(count: int, workdir: Path) -> list[str]:
    """Knowledge chunks of the standard corpus, as a migration cuts them (about 1,200 characters):
    a 400-file corpus of the shared generator migrated once into a SQLite file under ``workdir``."""
    from sqlalchemy import create_engine, text

    root, database = workdir / "corpus-400-7", workdir / "chunks-400-7.db"
    if not database.exists():
        if not root.exists():
            subprocess.run([sys.executable, str(HERE / "make_legacy_corpus.py"), str(root), "--files", "400", "--seed", "7"], check=True)
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "DAGSTER_HOME": str(workdir)}
        (workdir / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        command = [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(root), "--backup", str(workdir / "bk-400"), "-q"]
        subprocess.run(command, env=env, check=True, capture_output=True)
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        return list(conn.execute(text("select text from knowledge_items order by id limit :n"), {"n": count}).scalars())


def timed(label: str, embed, texts: list[str], warm: bool = True) -> tuple[np.ndarray, float, float]:
    """The vectors, chunks/s and chunks per CPU-second."""
    if warm:
        embed(texts[:8])  # loaded and warm
    wall, cpu = time.perf_counter(), cpu_seconds()
    vectors = np.asarray(embed(texts), dtype=np.float32)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    print(f"{label:<52} {len(texts) / wall:8.1f} chunks/s  ({wall:6.2f} s wall, {cpu:6.2f} CPU-s)")
    return vectors, len(texts) / wall, len(texts) / cpu


def embedding_stage(count: int, workdir: Path, workers: int) -> None:
    """The embedding stage of a migration with the ``minilm`` provider over ``count`` chunks of
    the standard corpus (a copy of the migrated database, its vectors dropped)."""
    import shutil

    from sqlalchemy import text

    from migration_assets import service
    from migration_assets.embeddings.minilm import MiniLMEmbedder
    from migration_assets.store.database import dispose_engine, get_engine

    copy = workdir / f"stage-{workers}.db"
    shutil.copyfile(workdir / "chunks-400-7.db", copy)
    engine = get_engine(f"sqlite:///{copy}")  # its schema brought to this version's
    with engine.begin() as conn:
        conn.execute(text("delete from embeddings"))
        conn.execute(text("delete from knowledge_items where id not in (select id from knowledge_items order by id limit :n)"), {"n": count})
        conn.execute(text("delete from content_items where id not in (select content_item_id from knowledge_items)"))  # no short items
    label = f"embedding stage, minilm, {workers} worker process{'es' if workers > 1 else ''}"
    counts = []

    def stage(_: list[str]) -> np.ndarray:
        counts.append(service.embedding_stage(engine, "bench", MiniLMEmbedder(), workers=workers))
        return np.zeros(0)

    if workers > 1:
        label += " (CPU-s: the caller only)"  # forkserver workers are not our children: their CPU time is not ours to read
    timed(label, stage, [""] * count, warm=False)
    assert counts[0].embedded == count and counts[0].short_items == 0, counts
    dispose_engine(f"sqlite:///{copy}")
    copy.unlink()


def quality(providers: dict[str, object]) -> None:
    from migration_assets import service
    from migration_assets.config import MigrationConfig
    from migration_assets.search import search
    from migration_assets.store.database import get_engine
    from migration_assets_tests.labeled_search import HELD_OUT, NAMES, PARAPHRASES, write_store

    with tempfile.TemporaryDirectory() as scratch:
        store = write_store(Path(scratch) / "store")
        url = f"sqlite:///{scratch}/labeled.db"
        env = {**os.environ, "DATABASE_URL": url, "DAGSTER_HOME": scratch}
        Path(scratch, "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        subprocess.run(
            [sys.executable, "-m", "migration_assets.cli", "migrate", "--source", str(Path(scratch) / "store"), "--backup", f"{scratch}/bk", "-q"],
            env=env,
            check=True,
            capture_output=True,
        )
        del store
        engine = get_engine(url)
        config = MigrationConfig(source_directory=f"{scratch}/store", backup_directory=f"{scratch}/bk", knowledge_min_chars=1)
        service.knowledge_stage(engine, "labeled", config)  # every document gets its chunk, short or not
        for label, provider in providers.items():
            service.embedding_stage(engine, "labeled", provider)  # type: ignore[arg-type]
            rates = []
            for queries in (PARAPHRASES, HELD_OUT, NAMES):
                hits = sum(search(engine, q, provider=provider, limit=1)["results"][0]["legacy_id"] == doc for q, doc in queries)  # type: ignore[arg-type]
                rates.append(f"{hits}/{len(queries)} ({100 * hits / len(queries):.0f} %)")
            print(f"{label:<36} paraphrases first: {rates[0]:<12} held-out: {rates[1]:<12} exact names: {rates[2]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=256, help="chunks for the provider calls")
    ap.add_argument(
        "--stage-chunks", type=int, default=3000, help="chunks for the embedding stage (model loads included; under 2,000 it keeps to one process)"
    )
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "migration-assets-bench")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    from migration_assets.embeddings import get_provider
    from migration_assets.embeddings.minilm import MiniLMEmbedder, StaticMiniLMEmbedder, model_path

    os.environ.setdefault("TQDM_DISABLE", "1")

    texts = corpus_chunks(args.chunks, args.workdir)
    print(f"{len(texts)} chunks of the standard corpus, {sum(map(len, texts)) / len(texts):.0f} characters on average; torch threads: ", end="")
    import torch
    from sentence_transformers import SentenceTransformer

    print(torch.get_num_threads())
    plain = SentenceTransformer(str(model_path()), device="cpu", local_files_only=True)
    minilm = MiniLMEmbedder()
    for turn in (1, 2):
        reference, plain_rate, plain_cpu = timed(
            f"plain encode (float32, batch 32), turn {turn}", lambda t: plain.encode(t, batch_size=32, normalize_embeddings=True), texts
        )
        ours, rate, cpu = timed(f"minilm provider (bfloat16, token batches), turn {turn}", minilm.embed, texts)
        print(f"{'  minilm provider against plain encode':<52} {rate / plain_rate:8.2f} ×  wall, {cpu / plain_cpu:.2f} × per CPU-second")
    for workers in (1, 2):
        embedding_stage(args.stage_chunks, args.workdir, workers)
    static = StaticMiniLMEmbedder()
    started = time.perf_counter()
    static.load()
    print(f"{'static model: distilled or loaded in':<52} {time.perf_counter() - started:8.1f} s  ({static.cached_path()})")
    timed(f"minilm-static provider ({static.name})", static.embed, texts * 20)
    timed("hashing provider (hashing-trigram-256)", get_provider().embed, texts * 20)
    agreement = np.sum(reference * ours, axis=1)
    print(f"minilm provider's vectors against plain encode's: cosine min {agreement.min():.5f}, mean {agreement.mean():.5f}")
    quality(
        {
            "hashing-trigram-256": get_provider(),
            "minilm (float32)": MiniLMEmbedder(fast=False),
            "minilm (bfloat16)": minilm,
            f"minilm-static ({static.name})": static,
        }
    )


if __name__ == "__main__":
    main()
