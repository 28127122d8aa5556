"""Query building and ranking, in-process against a real search database fed through the indexer."""

from __future__ import annotations

import asyncio
import random
import re
import string
import uuid
from datetime import UTC, datetime

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.search import store
from services.search.indexer import Indexer
from tests.services.search.conftest import FakeFeed, open_pool, product

HOSTILE = [
    "a & b | !c",
    "lapt:*",
    "x <-> y",
    "'; DROP TABLE search_documents; --",
    "((((",
    "\\",
    "'",
    "''",
    "foo:A*",
    "!",
    "a\x00b",
    "\u202e\u0000",
    "日本語 ノート",
    "naïve café",
    "under_score",
    "1 & 2",
    ":*:*",
]


def test_user_input_never_reaches_tsquery_syntax() -> None:
    """Only letters and digits survive tokenising, each quoted as a lexeme, so operators, quotes, weights
    and prefixes typed by a user are never interpreted as tsquery syntax."""
    lexeme = re.compile(r"^'[^\W_]+'(:\*)?$")
    for raw in HOSTILE:
        text = store.tsquery_text(store.tokens(raw))
        for part in filter(None, text.split(" & ")):
            assert lexeme.match(part), (raw, text)
    assert store.tsquery_text(store.tokens("Lapt")) == "'lapt':*"
    assert store.tsquery_text(store.tokens("wireless  KEYB")) == "'wireless' & 'keyb':*"
    assert store.tsquery_text(store.tokens("!!! ***")) == ""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(min_size=1, max_size=60), min_size=20, max_size=20))
def test_postgres_accepts_every_query_we_build(search_db: str, texts: list[str]) -> None:
    """Whatever a client types, the tsquery text we build parses in PostgreSQL (a parse error would be a
    5xx); arbitrary Unicode, control characters and operator soup included."""

    async def run() -> None:
        conn = await asyncpg.connect(search_db)
        try:
            for raw in [*texts, *HOSTILE]:
                await conn.fetchval("SELECT to_tsquery('english', $1)::text", store.tsquery_text(store.tokens(raw)))
        finally:
            await conn.close()

    asyncio.run(run())


CATALOGUE = {
    "laptop": product("UltraBook Laptop 14", description="A light notebook computer", category="computers"),
    "sleeve": product("Neoprene Sleeve", description="Protects any laptop up to 15 inches", category="bags"),
    "keyboard": product("Wireless Keyboard", description="Quiet keys, USB receiver", category="peripherals"),
    "lamp": product("Desk Lamp", description="Warm white LED", category="home"),
    "mouse": product("Ergonomic Mouse", description="Fits a keyboard tray", category="Peripherals"),
}


def _search(url: str, *queries: tuple[str, int, str | None]) -> list[tuple[list[store.Hit], int]]:
    async def run() -> list[tuple[list[store.Hit], int]]:
        async with open_pool(url) as pool:
            feed = FakeFeed()
            for p in CATALOGUE.values():
                feed.upsert(p)
            await Indexer(pool, feed).poll_once()
            return [
                await store.search(pool, q, limit=limit, category=category, typo_threshold=0.5)
                for q, limit, category in queries
            ]

    return asyncio.run(run())


def _names(hits: list[store.Hit]) -> list[str]:
    return [h.name for h in hits]


def test_ranking_prefix_typos_filters_and_totals(search_db: str) -> None:
    """The relevance promises of the contract, on one small catalogue: a name hit outranks a description
    hit; a prefix finds the word being typed; a typo still finds the product; the category filter is
    exact but case-insensitive; total counts every match even when limit cuts the items."""
    (exact, prefix, typo1, typo2, by_cat, limited, stop_words, nothing) = _search(
        search_db,
        ("laptop", 20, None),
        ("lapt", 20, None),
        ("laptpo", 20, None),
        ("keybord", 20, None),
        ("keyboard", 20, "PERIPHERALS"),
        ("keyboard", 1, None),
        ("the", 20, None),
        ("zzzqqq", 20, None),
    )
    assert _names(exact[0])[:2] == ["UltraBook Laptop 14", "Neoprene Sleeve"]
    assert exact[0][0].score > exact[0][1].score > 0
    assert _names(prefix[0])[0] == "UltraBook Laptop 14"
    assert "Neoprene Sleeve" in _names(prefix[0])
    assert _names(typo1[0])[0] == "UltraBook Laptop 14"
    assert _names(typo2[0])[0] == "Wireless Keyboard"
    assert set(_names(by_cat[0])) == {"Wireless Keyboard", "Ergonomic Mouse"}
    assert _names(by_cat[0])[0] == "Wireless Keyboard"
    assert len(limited[0]) == 1
    assert limited[1] == 2
    assert stop_words == ([], 0)  # only stop words: an empty tsquery, no error, no name this similar
    assert nothing == ([], 0)
    hit = exact[0][0]
    laptop = CATALOGUE["laptop"]
    assert (hit.product_id, hit.price_cents, hit.currency, hit.category) == (
        laptop.id,
        laptop.price_cents,
        laptop.currency,
        laptop.category,
    )


def test_a_selective_search_uses_both_gin_indexes(search_db: str) -> None:
    """On a catalogue of realistic size and vocabulary, a selective query must be answered from the GIN
    indexes (full text and name trigrams), not by scanning and trigram-comparing every product: that is
    the difference between milliseconds and a search that slows down linearly with the catalogue."""
    rng = random.Random(7)
    vocabulary = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 9))) for _ in range(5000)]
    now = datetime.now(UTC)

    def row(i: int) -> tuple[object, ...]:
        name = " ".join(rng.sample(vocabulary, 2)).title() + f" {rng.randint(1, 999)}"
        return (uuid.uuid4(), f"S{i}", name, " ".join(rng.sample(vocabulary, 6)), "misc", 100, "EUR", now, i + 1)

    async def run() -> dict[str, str]:
        conn = await asyncpg.connect(search_db)
        try:
            await conn.copy_records_to_table(
                "search_documents",
                records=[row(i) for i in range(50_000)],
                columns=[
                    "product_id",
                    "sku",
                    "name",
                    "description",
                    "category",
                    "price_cents",
                    "currency",
                    "updated_at",
                    "source_seq",
                ],
            )
            await conn.execute("ANALYZE search_documents")
            word = vocabulary[0]
            plans = {}
            for q in (word, word[:-1], word[0] + word[2] + word[1] + word[3:]):  # whole, prefix, typo
                terms = store.tokens(q)
                async with conn.transaction():
                    await conn.execute("SELECT set_config('pg_trgm.word_similarity_threshold', '0.5', true)")
                    plan = await conn.fetch(
                        "EXPLAIN " + store._SEARCH_SQL, store.tsquery_text(terms), " ".join(terms), None, 20
                    )
                plans[q] = "\n".join(r[0] for r in plan)
            return plans
        finally:
            await conn.close()

    for q, plan in asyncio.run(run()).items():
        assert "search_documents_document_idx" in plan, (q, plan)
        assert "search_documents_name_trgm_idx" in plan, (q, plan)
        assert "Seq Scan" not in plan, (q, plan)
