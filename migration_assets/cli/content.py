"""Commands about what landed: ``search``."""

from __future__ import annotations

import click

from migration_assets.cli.common import DATABASE_OPTION, Output, Result, output_options, reported, target_url
from migration_assets.cli.runs import _existing_target


@click.command()
@click.argument("query")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000), help="How many results.")
@click.option("--source", default=None, help="Only items from this source directory.")
@click.option("--format", "source_format", default=None, help="Only items of this source format (json, jsonl, markdown, text, csv).")
@click.option("--type", "content_type", default=None, help="Only items of this content type.")
@click.option("--category", default=None, help="Only items of this category.")
@click.option("--tag", default=None, help="Only items with this tag.")
@click.option("--provider", default=None, help="Embedding provider of the query (default: $MIGRATION_EMBEDDING_PROVIDER, else hashing).")
@DATABASE_OPTION
@output_options
@reported
def search(
    out: Output,
    query: str,
    limit: int,
    source: str | None,
    source_format: str | None,
    content_type: str | None,
    category: str | None,
    tag: str | None,
    provider: str | None,
    database_url: str | None,
) -> Result:
    """The content items that best match QUERY: by meaning (the stored vectors of the provider's
    model) and by words (the database's full-text index), fused by rank. Each with its title,
    score, a snippet, its ids and source path.

    \b
    Examples:
      python -m migration_assets.cli search "how do I reset my password" --limit 5
      python -m migration_assets.cli search "INV-2023-0042" --format csv --json
    """
    from pathlib import Path

    from migration_assets.operations import search_document
    from migration_assets.search import SearchFilters

    filters = SearchFilters(
        source=str(Path(source).resolve()) if source else None, format=source_format, type=content_type, category=category, tag=tag
    )
    try:
        message, document = search_document(_existing_target(target_url(database_url)), query, limit=limit, filters=filters, provider_name=provider)
    except ValueError as exc:  # an unknown provider
        from migration_assets.cli.common import Failure

        raise Failure(str(exc), code=2, kind="usage_error") from None
    lines = [message]
    for n, hit in enumerate(document["results"], start=1):
        where = f"{hit['source_path']}  (id {hit['content_item_id']}, legacy {hit['legacy_id']})"
        lines.append(f"{n:>3}. {hit['title'] or '(untitled)'}  [{hit['score']:.4f}]  {where}")
        lines.append(f"     {hit['snippet']}")
    return Result(message, document, lines)
