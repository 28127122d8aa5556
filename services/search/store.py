"""Turning a user's query into a safe, ranked PostgreSQL search.

User input never becomes tsquery *syntax*: the query is reduced to word tokens (letters and digits
only, so no ``& | ! ( ) : * <->`` or quotes can survive), each token is quoted as a lexeme, and the
resulting text is passed to ``to_tsquery`` as a bind parameter. The raw input never reaches the
database at all (it may contain NUL bytes, which PostgreSQL text cannot hold).

Ranking combines two signals into one score in [0, 1]:

- full text: ``ts_rank`` over the weighted document (name A, category B, description C), normalised
  to rank/(rank+1); every term must match, the last one as a prefix (``lapt`` finds "laptop");
- typo tolerance: pg_trgm ``word_similarity`` between the query and the product name, so "keybord"
  still finds "Keyboard" although no lexeme matches.

A product matches when either signal does (full text, or a name similarity above the threshold).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import asyncpg

# Whitespace as every engine that sees the pattern agrees on it (JSON Schema/ECMA for clients and
# schemathesis, Rust regex in pydantic, Python's str.strip here): \s differs between them (U+0085,
# U+FEFF, U+001C..U+001F), so it is spelled out.
WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_WS_CLASS = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
MAX_QUERY_CHARS = 200
# 1..200 characters once surrounding whitespace is trimmed; at least one non-blank character.
QUERY_PATTERN = rf"^[{_WS_CLASS}]*[^{_WS_CLASS}]([\s\S]{{0,{MAX_QUERY_CHARS - 2}}}[^{_WS_CLASS}])?[{_WS_CLASS}]*$"
# Printable text, no control characters (NUL cannot even be stored in PostgreSQL text).
CATEGORY_PATTERN = r"^[^\u0000-\u001f\u007f]+$"

_TOKEN = re.compile(r"[^\W_]+")  # letters and digits (Unicode), nothing else
MAX_TERMS = 16


def normalize(q: str) -> str:
    return q.strip(WHITESPACE)


def tokens(q: str) -> list[str]:
    """The word tokens of a query, lower-cased, at most ``MAX_TERMS`` (the rest add nothing useful)."""
    return _TOKEN.findall(q.lower())[:MAX_TERMS]


def tsquery_text(terms: list[str]) -> str:
    """``'a' & 'b' & 'c':*`` — all terms required, the last one as a prefix (the user may still be typing).

    Terms come from :func:`tokens`, so they hold no quote or operator characters; quoting them as
    lexemes is belt and braces. Stop words ("the") are dropped by ``to_tsquery`` itself.
    """
    if not terms:
        return ""
    quoted = [f"'{t}'" for t in terms]
    quoted[-1] += ":*"
    return " & ".join(quoted)


@dataclass(frozen=True, slots=True)
class Hit:
    product_id: uuid.UUID
    name: str
    price_cents: int
    currency: str
    category: str
    score: float


# $1 tsquery text, $2 trigram text, $3 category or NULL, $4 limit.
# The two match conditions are a UNION, not an OR: each branch is planned on its own and uses its GIN
# index (document / name trigrams). With an OR the planner underestimates the per-row cost of `<%` and
# picks a sequential scan: ~100-150 ms instead of ~5 ms on 50k products with a realistic vocabulary.
_SEARCH_SQL = """
WITH query AS (SELECT to_tsquery('english', $1) AS tsq),
-- Each product once, without a second pass over the table: the text matches, then the name matches that are
-- not text matches. (A UNION of ids joined back to the table lets the planner pick a sequential scan for
-- that join whenever its trigram estimate ran high, which it does by ANALYZE's sample.)
matches AS (
    SELECT d.product_id, d.name, d.price_cents, d.currency, d.category, d.document
    FROM search_documents AS d, query WHERE d.document @@ query.tsq
    UNION ALL
    SELECT d.product_id, d.name, d.price_cents, d.currency, d.category, d.document
    FROM search_documents AS d, query WHERE $2 <% d.name AND (d.document @@ query.tsq) IS NOT TRUE
)
SELECT m.product_id, m.name, m.price_cents, m.currency, m.category,
       (ts_rank('{0.1, 0.2, 0.4, 1.0}', m.document, query.tsq, 32) + word_similarity($2, m.name)) / 2
           AS score,
       count(*) OVER () AS total
FROM matches AS m, query
WHERE $3::text IS NULL OR lower(m.category) = lower($3::text)
ORDER BY score DESC, m.name, m.product_id
LIMIT $4
"""


async def search(
    pool: asyncpg.Pool, q: str, *, limit: int, category: str | None, typo_threshold: float
) -> tuple[list[Hit], int]:
    """Ranked hits (best first) and the total number of matches."""
    terms = tokens(q)
    if not terms:
        return [], 0
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        # Scoped to this transaction (is_local): the `<%` operator reads its threshold from the GUC.
        await conn.execute("SELECT set_config('pg_trgm.word_similarity_threshold', $1, true)", str(typo_threshold))
        rows = await conn.fetch(_SEARCH_SQL, tsquery_text(terms), " ".join(terms), category, limit)
    hits = [
        Hit(r["product_id"], r["name"], r["price_cents"], r["currency"], r["category"], round(float(r["score"]), 6))
        for r in rows
    ]
    total = int(rows[0]["total"]) if rows else 0
    return hits, total
