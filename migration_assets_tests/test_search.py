"""Search: hybrid ranking that finds exact names and codes first, filters, hostile queries, and
a full-text index the database keeps exactly in step with migrations, incremental runs and
rollbacks (SQLite FTS5 and PostgreSQL tsvector)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select, text

from migration_assets.embeddings import get_provider
from migration_assets.rollback import rollback
from migration_assets.search import SearchFilters, search
from migration_assets.store.database import get_engine
from migration_assets.store.tables import CONTENT
from migration_assets_tests.test_pipeline import materialize

HASHING = get_provider()


def write_store(root: Path) -> Path:
    """A small help-desk and product store, in several formats, with names and codes in it."""
    (root / "kb").mkdir(parents=True)
    (root / "products").mkdir()
    (root / "kb" / "password.md").write_text(
        "---\ntitle: Resetting a forgotten password\ncategory: accounts\ntags: [login, security]\n---\n"
        "Open the sign-in page and choose the link below the form. We send a message with a one-time link to the "
        "address on file; it stays valid for thirty minutes.\n"
    )
    (root / "kb" / "vpn.md").write_text(
        "---\ntitle: Connecting from home\ncategory: network\ntags: [remote]\n---\n"
        "Install the WireGuard client, import the profile named corp-gw-7, and keep the tunnel up while you work.\n"
    )
    (root / "kb" / "invoices.json").write_text(
        json.dumps(
            [
                {
                    "id": "inv-faq-1",
                    "title": "Where is my invoice?",
                    "content": "Invoice INV-2023-0042 and later ones are in the billing portal.",
                    "category": "billing",
                    "tags": ["billing"],
                },
                {
                    "id": "inv-faq-2",
                    "title": "Refunds",
                    "content": "Refunds reach the original card within ten working days.",
                    "category": "billing",
                    "tags": ["billing", "payments"],
                },
            ]
        )  # fmt: skip
    )
    (root / "products" / "catalog.csv").write_text(
        "id,title,content,category\n"
        "sku-1,Espresso machine Barista Pro 9000,Steam wand and a 15 bar pump for café drinks at home.,kitchen\n"
        "sku-2,Cast iron skillet,Pre-seasoned pan that goes from stove to oven.,kitchen\n"
        "sku-3,Trail running shoes Zephyrine,Grippy outsole for muddy mountain paths.,outdoor\n"
    )
    (root / "notes.txt").write_text("Quarterly all-hands moved to the Kilimanjaro room on the third floor.\n")
    return root


def first(engine, query: str, **filters) -> str | None:
    results = search(engine, query, provider=HASHING, limit=5, filters=SearchFilters(**filters))["results"]
    return results[0]["legacy_id"] if results else None


def found(engine, query: str) -> list[str]:
    """What the text index finds for ``query``."""
    return [r["legacy_id"] for r in search(engine, query, provider=HASHING, limit=50)["results"] if r["text_rank"]]


def index_is_whole(engine) -> None:
    """The database's own check that its text index matches the content table."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("insert into content_search(content_search) values ('integrity-check')"))
        else:
            stale = conn.execute(
                text(
                    "select count(*) from content_items where search_vector is distinct from "
                    "(setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
                    "setweight(to_tsvector('simple', left(coalesce(content, ''), 100000)), 'B'))"
                )
            ).scalar_one()
            assert stale == 0


def test_exact_names_and_codes_come_first_and_filters_narrow(tmp_path, target_url, instance):
    source = write_store(tmp_path / "store")
    assert materialize(source, tmp_path / "bk", target_url, instance).success
    engine = get_engine(target_url)
    index_is_whole(engine)
    with engine.connect() as conn:
        items = dict(conn.execute(select(CONTENT.c.title, CONTENT.c.legacy_id)).tuples().all())
    assert first(engine, "INV-2023-0042") == items["Where is my invoice?"]
    assert first(engine, "corp-gw-7") == items["Connecting from home"]
    assert first(engine, "Zephyrine") == items["Trail running shoes Zephyrine"]
    assert first(engine, "barista pro 9000") == items["Espresso machine Barista Pro 9000"]
    hit = search(engine, "Kilimanjaro", provider=HASHING, limit=1)["results"][0]
    assert hit["source_path"] == "notes.txt" and "Kilimanjaro room" in hit["snippet"] and hit["text_rank"] == 1
    # every item with text is findable by a word of its own, short ones included
    for title, legacy_id in items.items():
        if title:
            assert legacy_id in found(engine, title), title
    # filters narrow both sides alike
    assert first(engine, "refunds", category="kitchen") != items["Refunds"]
    assert first(engine, "refunds", category="billing") == items["Refunds"]
    assert first(engine, "refunds", tag="payments") == items["Refunds"]
    assert first(engine, "refunds", tag="login") is None or first(engine, "refunds", tag="login") == items["Resetting a forgotten password"]
    everywhere = search(engine, "for", provider=HASHING, limit=50)["results"]  # a function word alone is kept
    assert {r["format"] for r in everywhere} > {"csv"}
    assert {r["format"] for r in search(engine, "for", provider=HASHING, limit=50, filters=SearchFilters(format="csv"))["results"]} == {"csv"}
    assert first(engine, "refunds", source=str(tmp_path / "elsewhere")) is None


HOSTILE_QUERIES = [
    '"',
    "NEAR(",
    "a AND OR NOT b",
    "*",
    "title:x",
    "-",
    "()",
    "a:*",
    "!b",
    "'; drop table content_items; --",
    "x" * 5000,
    "ünïcödé ✓",
    "   ",
    "\ud800",
]


def test_queries_are_words_never_index_syntax(tmp_path, target_url, instance):
    assert materialize(write_store(tmp_path / "store"), tmp_path / "bk", target_url, instance).success
    engine = get_engine(target_url)
    for query in HOSTILE_QUERIES:
        assert isinstance(search(engine, query, provider=HASHING)["results"], list), query
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CONTENT)).scalar_one() == 8
    assert first(engine, "(Zephyrine*)") == first(engine, "zephyrine") is not None  # the words still count


def test_the_index_follows_incremental_runs_and_rollbacks_exactly(tmp_path, target_url, instance):
    source = write_store(tmp_path / "store")
    engine = get_engine(target_url)
    first_run = materialize(source, tmp_path / "bk", target_url, instance)
    assert first_run.success
    (source / "kb" / "vpn.md").write_text("---\ntitle: Connecting from home\n---\nUse the Tailscale agent now; the tunnel is gone.\n")
    (source / "fresh.txt").write_text("A brand new note about the Okavango expedition.\n")
    (source / "notes.txt").unlink()
    second = materialize(source, tmp_path / "bk", target_url, instance, incremental=True, prune_removed=True)
    assert second.success
    index_is_whole(engine)
    assert found(engine, "tailscale") and not found(engine, "wireguard")
    assert found(engine, "okavango") and not found(engine, "kilimanjaro")
    # undo the second run: the old text is found again, the new text no more
    assert rollback(engine, None, target_url, run_id=second.run_id, confirm=True).applied
    index_is_whole(engine)
    assert found(engine, "wireguard") and not found(engine, "tailscale")
    assert found(engine, "kilimanjaro") and not found(engine, "okavango")
    # undo the first: nothing is found
    assert rollback(engine, None, target_url, run_id=first_run.run_id, confirm=True).applied
    index_is_whole(engine)
    assert not found(engine, "wireguard") and not found(engine, "refunds")
