"""What every command shares: its options, one way to succeed and one to fail (text, or the
``--json`` document the REST API returns too), live progress, and structured log lines."""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from migration_assets.config import database_url_from_env
from migration_assets.documents import dumps, failure, success
from migration_assets.rules import MigrationRules, RulesError, load_rules

F = TypeVar("F", bound=Callable[..., Any])


class Failure(Exception):
    """A command that cannot do what it was asked: one line, an exit code (2: the arguments,
    1: the work failed or was refused) and a kind a program can branch on."""

    def __init__(self, message: str, *, code: int = 1, kind: str = "failed", details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.kind = kind
        self.details = details or {}


@dataclass
class Result:
    """What a command did: a message, the data its ``--json`` document carries, and the lines
    it prints for people (the message alone when there are none)."""

    message: str
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def one_line(exc: BaseException) -> str:
    """An error as one line: a database's own message without SQLAlchemy's statement dump."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        text = str(orig) if orig is not None else str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class Output:
    """Where a command's results, progress and log lines go: results on stdout (text, or one
    JSON document with ``--json``); progress and ``--verbose`` log lines on stderr; nothing
    extra with ``--quiet``."""

    def __init__(self, *, as_json: bool = False, verbose: bool = False, quiet: bool = False) -> None:
        self.as_json = as_json
        self.verbose = verbose
        self.quiet = quiet

    def event(self, message: str, **fields: Any) -> None:
        """A structured log line (JSON, one per event) on stderr, with ``--verbose``."""
        if self.verbose:
            record = {"time": dt.datetime.now(dt.UTC).isoformat(), "level": "info", "message": message, **fields}
            click.echo(json.dumps(record, default=str), err=True)

    def progress(self, label: str, unit: str = "files") -> Progress:
        return Progress(self, label, unit)

    def succeed(self, result: Result) -> None:
        if self.as_json:
            click.echo(dumps(success(result.message, result.data)))
        else:
            for line in result.lines or [result.message]:
                click.echo(line)

    def fail(self, exc: Failure) -> None:
        if self.as_json:
            click.echo(dumps(failure(exc.kind, str(exc), exc.details)))
        else:
            click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.code)


def reported(command: F) -> F:
    """Run a command body that returns a ``Result`` or raises ``Failure``; any other exception is
    one line too (its traceback only with ``--verbose``)."""

    @functools.wraps(command)
    def run(*args: Any, as_json: bool = False, verbose: bool = False, quiet: bool = False, **kwargs: Any) -> None:
        out = Output(as_json=as_json, verbose=verbose, quiet=quiet)
        try:
            result = command(*args, out=out, **kwargs)
        except Failure as exc:
            if verbose and exc.__context__ is not None:  # what lay under the one line
                traceback.print_exception(exc.__context__, file=sys.stderr)
            out.fail(exc)
        except SQLAlchemyError as exc:
            if verbose:
                traceback.print_exception(exc, file=sys.stderr)
            out.fail(Failure(f"the target database cannot be used: {one_line(exc)}", kind="database_error"))
        except Exception as exc:
            if verbose:  # the traceback on stderr; the one line (or document) all the same
                traceback.print_exception(exc, file=sys.stderr)
            hint = "" if verbose else " (run with --verbose for the traceback)"
            out.fail(Failure(f"{type(exc).__name__}: {one_line(exc)}{hint}", kind="internal_error"))
        else:
            out.succeed(result)

    return run  # type: ignore[return-value]


def output_options(command: F) -> F:
    """``--json``, ``--verbose`` and ``--quiet``, on every command."""
    command = click.option("--quiet", "-q", is_flag=True, help="Print the result only: no progress.")(command)
    command = click.option("--verbose", "-v", is_flag=True, help="More detail, structured log lines (JSON) on stderr, tracebacks.")(command)
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (the REST API's shape).")(command)


DATABASE_OPTION = click.option("--database-url", default=None, help="Target database URL (default: $DATABASE_URL, else a SQLite file).")
RULES_OPTION = click.option(
    "--rules",
    "rules_file",
    default=None,
    envvar="MIGRATION_RULES_FILE",
    metavar="FILE",
    help="TOML or YAML rules file: field mapping and validation rules (default: $MIGRATION_RULES_FILE, else the built-in rules).",
)


def target_url(given: str | None) -> str:
    """The target database: ``--database-url``, else ``$DATABASE_URL``, else the SQLite default."""
    return given or database_url_from_env()


def rules_of(rules_file: str | None) -> tuple[str | None, MigrationRules]:
    """The rules file resolved and checked before anything is read: a bad one is a usage error
    naming the key and why."""
    path = str(Path(rules_file).expanduser().resolve()) if rules_file else None
    try:
        return path, load_rules(path)
    except RulesError as exc:
        raise Failure(str(exc), code=2, kind="invalid_rules") from None


def rules_line(rules: MigrationRules) -> str:
    return f"Rules: {rules.source or 'the built-in defaults'} (hash {rules.hash[:12]})"


def readable_folder(path: str) -> Path:
    """A source folder the command can read, or a usage error naming why not."""
    folder = Path(path).expanduser().resolve()
    try:
        next(iter(folder.iterdir()), None)
    except OSError as exc:
        raise Failure(f"the source {folder} cannot be read: {exc.strerror or exc}", code=2, kind="usage_error") from None
    return folder


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Live progress of a long command on stderr: a bar (rich) when stdout is a terminal, a plain
    line every few seconds otherwise, nothing with ``--quiet``; with ``--verbose`` each update is
    also a structured log line."""

    def __init__(self, out: Output, label: str, unit: str) -> None:
        self.out = out
        self.label = label
        self.unit = unit
        self.bar: Any = None
        self.task: Any = None
        self.last_line = 0.0
        self.last_state: tuple[Any, ...] | None = None
        self.said_finished = False
        self.started = time.monotonic()
        if not out.quiet and sys.stdout.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=None, detail="")

    def update(self, done: int, total: int | None, **counts: Any) -> None:
        state = (done, total, tuple(counts.items()))
        if state == self.last_state:
            return  # nothing moved (a run's checks and report after its last batch, say): nothing to say
        self.last_state = state
        detail = ", ".join(f"{value} {name}" for name, value in counts.items() if value is not None)
        self.out.event(f"{self.label}: progress", done=done, total=total, unit=self.unit, **counts)
        if self.out.quiet:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, detail=detail)
            return
        now = time.monotonic()
        finished = bool(total) and done >= (total or 0)
        if now - self.last_line >= 5 or (finished and not self.said_finished):
            self.said_finished = finished
            self.last_line = now
            share = f" ({100 * done // total}%)" if total else ""
            elapsed = now - self.started
            eta = f", ETA {_duration((total - done) * elapsed / done)}" if total and done and elapsed > 0 and done < total else ""
            click.echo(f"{self.label}: {done}/{total if total else '?'} {self.unit}{share}{', ' + detail if detail else ''}{eta}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
