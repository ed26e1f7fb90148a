import random

import numpy as np
import pytest

from migration_assets.embeddings import chunk_text, get_provider


def test_hashing_embedder_is_deterministic_unit_length_and_lexical():
    provider = get_provider("hashing-trigram-256")
    a = provider.embed(["Data migration of legacy records", "data migration of legacy record", "Café crème brûlée"])
    b = provider.embed(["Data migration of legacy records"])
    assert a.shape == (3, 256) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a[0], b[0])
    assert a[0] @ a[1] > 0.8 > a[0] @ a[2]


def test_texts_do_not_leak_into_each_other():
    provider = get_provider()
    alone = provider.embed(["alpha beta"])[0]
    together = provider.embed(["zzz", "alpha beta", "yyy"])[1]
    assert np.allclose(alone, together)


def test_a_large_call_embeds_each_text_as_a_call_of_its_own_would():
    provider = get_provider()
    texts = [f"text {i} " * (i % 7 + 1) for i in range(700)]  # more than one internal slice
    assert np.array_equal(provider.embed(texts), np.vstack([provider.embed([t]) for t in texts]))


def test_unknown_provider_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown embedding provider"):
        get_provider("bert-large")


def test_chunks_cover_the_text_without_loss_and_respect_the_size():
    text = "\n\n".join(f"Paragraph {i}. " + "Sentence here. " * (i % 7 + 3) for i in range(60))
    chunks = chunk_text(text, 300)
    assert "".join(c.text for c in chunks) == text
    assert all(len(c.text) <= 300 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_text_without_breaks_is_cut_at_the_size():
    chunks = chunk_text("x" * 1000, 300)
    assert [len(c.text) for c in chunks] == [300, 300, 300, 100]


def _reference_embedding(text: str, dim: int = 256) -> np.ndarray:
    """The hashing embedder's definition, one trigram at a time in plain Python."""
    data = (" " + " ".join(text.lower().split()) + " ").encode("utf-8", "replace")
    vector = np.zeros(dim, dtype=np.float64)
    for i in range(len(data) - 2):
        gram = data[i] << 16 | data[i + 1] << 8 | data[i + 2]
        bucket = ((gram * 2654435761) & 0xFFFFFFFF) >> 7 & (dim - 1)
        vector[bucket] += -1.0 if ((gram * 2246822519) & 0xFFFFFFFF) >> 31 else 1.0
    norm = np.linalg.norm(vector)
    return (vector / norm if norm else vector).astype(np.float32)


def test_the_vectorised_embedder_matches_its_plain_definition_on_awkward_text():
    # every kind of whitespace str.split() knows, NUL, case that changes length, emoji, a lone surrogate
    alphabet = list("aAbB \t\n\r\x0b\x0c\x1c\x1f\x00éÉİ\u3000\u2003\xa0\x85’—日本😀\u2028\u205f\ud800x")
    rng = random.Random(7)
    provider = get_provider()
    for _ in range(300):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(rng.randint(1, 6))]
        expected = np.vstack([_reference_embedding(t) for t in texts])
        assert np.allclose(provider.embed(texts), expected, atol=1e-6), texts
