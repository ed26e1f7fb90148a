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
