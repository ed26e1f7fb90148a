"""Serve the REST API: ``python -m migration_assets.api --host H --port P`` (or the
``migration-assets-api`` script). Tokens come from ``MIGRATION_API_TOKEN`` or
``MIGRATION_API_TOKENS_FILE``; without any, the server refuses to start unless
``--insecure-local`` serves loopback only. ``hash-token`` prints what a tokens file keeps of a
token."""

from __future__ import annotations

import ipaddress
import logging
import re
import sys

import click

from migration_assets.api.access import Access, AccessConfigError, token_digest


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
@click.option("--insecure-local", is_flag=True, help="No tokens: every request is the local admin. Loopback addresses only.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.pass_context
def main(ctx: click.Context, host: str, port: int, database_url: str | None, insecure_local: bool, log_level: str) -> None:
    """Serve the migration REST API (/api/v1, OpenAPI at /api/v1/openapi.json).

    \b
    Examples:
      MIGRATION_API_TOKEN=$(openssl rand -hex 32) python -m migration_assets.api --host 0.0.0.0 --port 8000
      python -m migration_assets.api --insecure-local --port 8000
      echo -n "$TOKEN" | python -m migration_assets.api hash-token
    """
    if ctx.invoked_subcommand:
        return
    if insecure_local and not _loopback(host):
        click.echo(f"Error: --insecure-local serves loopback only; {host} is not a loopback address", err=True)
        sys.exit(2)
    try:
        access = Access.from_env(insecure_local=insecure_local)
    except AccessConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    import uvicorn

    from migration_assets.api.app import create_app
    from migration_assets.cli.common import one_line
    from migration_assets.runner import ensure_dagster_home

    home = ensure_dagster_home()  # the runs it starts go to this instance, and show in the UI
    try:
        app = create_app(access=access, database_url=database_url)
    except Exception as exc:  # noqa: BLE001 - one line: the target cannot be used
        click.echo(f"Error: the target database cannot be used: {one_line(exc)}", err=True)
        sys.exit(1)
    roots = ", ".join(str(r) for r in access.allowed_roots)
    who = "no tokens (--insecure-local)" if access.insecure_local else f"{len(access.tokens)} token{'' if len(access.tokens) == 1 else 's'}"
    click.echo(f"migration-assets API on http://{host}:{port}/api/v1 — {who}; allowed roots: {roots}; Dagster instance: {home}", err=True)
    logging.getLogger("uvicorn.access").addFilter(_hide_tokens)
    logging.getLogger("uvicorn.error").addFilter(_hide_tokens)  # it logs each WebSocket's path and query
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=64 * 1024)


_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s\"']*")


def _hide_tokens(record: logging.LogRecord) -> bool:
    """A token given in a query string (``?access_token=``, WebSocket clients) is never logged."""
    if record.args:
        record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)  # type: ignore[arg-type]
    if isinstance(record.msg, str):
        record.msg = _TOKEN_IN_QUERY.sub(r"\1***", record.msg)
    return True


@main.command("hash-token")
def hash_token() -> None:
    """Read a token on stdin and print its sha256, for a tokens file.

    \b
    Example:
      echo -n "$TOKEN" | python -m migration_assets.api hash-token
    """
    token = sys.stdin.read().strip()
    if not token:
        click.echo("Error: give the token on stdin", err=True)
        sys.exit(2)
    click.echo(token_digest(token))


if __name__ == "__main__":
    main()
