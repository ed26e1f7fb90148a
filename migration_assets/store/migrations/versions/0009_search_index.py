"""full-text search over content items, kept in step by the database itself

SQLite: ``content_search``, an FTS5 index over ``content_items`` (external content: it keeps
the index, not a copy of the text), written by triggers on every insert, update and delete,
so migrations, imports and rollbacks keep it exactly in step. PostgreSQL: a generated
``search_vector`` tsvector column (title weighted above content) with a GIN index.

A later migration that rebuilds ``content_items`` on SQLite (Alembic's batch mode copies the
table) drops these triggers with it: it must create them again (``create_sqlite_search``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEXED_CHARS = 100_000  # PostgreSQL: a text is indexed on its first 100,000 characters (a tsvector holds at most 1 MB)

SQLITE_SEARCH = [
    "create virtual table if not exists content_search using fts5("
    "title, content, content='content_items', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "create trigger if not exists content_search_insert after insert on content_items begin "
    "insert into content_search(rowid, title, content) values (new.id, new.title, new.content); end",
    "create trigger if not exists content_search_delete after delete on content_items begin "
    "insert into content_search(content_search, rowid, title, content) values ('delete', old.id, old.title, old.content); end",
    "create trigger if not exists content_search_update after update of title, content on content_items begin "
    "insert into content_search(content_search, rowid, title, content) values ('delete', old.id, old.title, old.content); "
    "insert into content_search(rowid, title, content) values (new.id, new.title, new.content); end",
    "insert into content_search(content_search) values ('rebuild')",
]


def create_sqlite_search() -> None:
    for statement in SQLITE_SEARCH:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        create_sqlite_search()
        return
    op.execute(
        "alter table content_items add column search_vector tsvector generated always as ("
        "setweight(to_tsvector('simple', coalesce(title, '')), 'A') || "
        f"setweight(to_tsvector('simple', left(coalesce(content, ''), {INDEXED_CHARS})), 'B')) stored"
    )
    op.execute("create index ix_content_items_search_vector on content_items using gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("content_search_insert", "content_search_delete", "content_search_update"):
            op.execute(f"drop trigger if exists {name}")
        op.execute("drop table if exists content_search")
        return
    op.execute("drop index if exists ix_content_items_search_vector")
    op.execute("alter table content_items drop column if exists search_vector")
