"""The full-text side of search: the database's own index (SQLite FTS5 ``content_search``,
PostgreSQL ``content_items.search_vector``, migration 0009), asked for the items holding all
of the query's words and ranked by relevance (BM25, ``ts_rank_cd``), the title above the text."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, column, func, literal_column, select, table, text

from migration_assets.store.tables import CONTENT

WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 32
FTS = table("content_search", column("rowid"))


# English function words: in a question they match every document and say nothing of the one
# wanted ("how do I ..."); a query of nothing else keeps them
STOPWORDS = frozenset(
    """a about after all also am an and any are as at be been before being but by can could did do does doing down during each few for
    from had has have having he her here hers him his how i if in into is it its itself just me more most my no nor not now of off on
    once only or other our ours out over own same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom why will with would you your yours""".split()  # noqa: SIM905
)


def words(query: str) -> list[str]:
    """The query's words, lower-cased, each once, in order, without function words (unless that
    leaves none); punctuation and operators dropped: a query is never read as index syntax."""
    seen: dict[str, None] = {}
    for word in WORD.findall(query.lower()):
        seen.setdefault(word, None)
    found = list(seen)
    meaningful = [w for w in found if w not in STOPWORDS]
    return (meaningful or found)[:MAX_WORDS]


def ranking(conn: Connection, query: str, allowed: Select[tuple[int]] | None, limit: int) -> list[int]:
    """Ids of the content items that hold every one of the query's words, best first. Every, not
    any: a text match is evidence of a name, a code or the very words asked for; a document that
    shares one common word with a question is the vector side's to judge."""
    terms = words(query)
    if not terms:
        return []
    if conn.dialect.name == "sqlite":
        match = " AND ".join('"' + term + '"' for term in terms)  # quoted: a word, never an operator
        statement = (
            select(FTS.c.rowid)
            .where(text("content_search MATCH :match").bindparams(match=match))
            .order_by(text("bm25(content_search, 4.0, 1.0)"))
            .limit(limit)
        )
        if allowed is not None:
            statement = statement.where(FTS.c.rowid.in_(allowed))
    else:
        # PostgreSQL's parser reads the query as it read the documents ("INV-2023-0042" gives the
        # same tokens on both sides); function words are left out as for SQLite
        vector: ColumnElement[Any] = literal_column("search_vector")
        meaningful = bool(set(terms) - STOPWORDS)  # else a query of function words only: kept whole
        kept = [token for token in query.split() if not meaningful or "".join(WORD.findall(token.lower())) not in STOPWORDS]
        tsquery = func.plainto_tsquery("simple", " ".join(kept))
        statement = select(CONTENT.c.id).where(vector.op("@@")(tsquery)).order_by(func.ts_rank_cd(vector, tsquery).desc(), CONTENT.c.id).limit(limit)
        if allowed is not None:
            statement = statement.where(CONTENT.c.id.in_(allowed))
    return [row[0] for row in conn.execute(statement)]
