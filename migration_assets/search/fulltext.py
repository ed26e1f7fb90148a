"""The full-text side of search: the database's own index (SQLite FTS5 ``content_search``,
PostgreSQL ``content_items.search_vector``, migration 0009), asked for any of the query's
words and ranked by relevance (BM25, ``ts_rank_cd``), the title above the text."""

from __future__ import annotations

import re

from sqlalchemy import Connection, Select, column, func, literal_column, select, table, text

from migration_assets.store.tables import CONTENT

WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 32
FTS = table("content_search", column("rowid"))


def words(query: str) -> list[str]:
    """The query's words, lower-cased, each once, in order (punctuation and operators dropped:
    a query is never read as index syntax)."""
    seen: dict[str, None] = {}
    for word in WORD.findall(query.lower()):
        seen.setdefault(word, None)
    return list(seen)[:MAX_WORDS]


def ranking(conn: Connection, query: str, allowed: Select[tuple[int]] | None, limit: int) -> list[int]:
    """Ids of the content items that hold any of the query's words, best first."""
    terms = words(query)
    if not terms:
        return []
    if conn.dialect.name == "sqlite":
        match = " OR ".join('"' + term + '"' for term in terms)  # quoted: a word, never an operator
        statement = (
            select(FTS.c.rowid)
            .where(text("content_search MATCH :match").bindparams(match=match))
            .order_by(text("bm25(content_search, 4.0, 1.0)"))
            .limit(limit)
        )
        if allowed is not None:
            statement = statement.where(FTS.c.rowid.in_(allowed))
    else:
        vector, tsquery = literal_column("search_vector"), func.to_tsquery("simple", " | ".join(terms))
        statement = select(CONTENT.c.id).where(vector.op("@@")(tsquery)).order_by(func.ts_rank_cd(vector, tsquery).desc(), CONTENT.c.id).limit(limit)
        if allowed is not None:
            statement = statement.where(CONTENT.c.id.in_(allowed))
    return [row[0] for row in conn.execute(statement)]
