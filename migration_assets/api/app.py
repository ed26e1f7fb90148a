"""The REST API of the spec: a thin face over the same use cases as the CLI (``operations``,
``status``, ``cleanup``, ``content_items``, ``launch``), returning the same documents in the
same envelope (``documents.py``). Every request needs a bearer token; changes need the admin
role; paths must lie under the allowed roots; every change and every refusal is audited.

Routes are plain functions (run in a thread pool: the use cases are synchronous); only the
WebSocket, which waits between events, is async."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Query, Request, WebSocket
from fastapi import Path as ApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.websockets import WebSocketDisconnect

from migration_assets import audit, documents
from migration_assets.api.access import Access, Caller, PathNotAllowed
from migration_assets.api.models import ERRORS, SERVER_ERRORS, Envelope, ImportRequest, MigrationRequest, RollbackRequest, ValidateRequest
from migration_assets.config import MigrationConfig, backup_directory_from_env, database_url_from_env
from migration_assets.store.database import get_engine

log = logging.getLogger("migration_assets.api")

PREFIX = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
WS_POLL_SECONDS = 0.5

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ApiError(Exception):
    """A refusal or failure with its status code, its kind and, for bad fields, what is wrong with each."""

    def __init__(self, status: int, kind: str, message: str, field_errors: dict[str, list[str]] | None = None, run: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.field_errors = field_errors
        self.run = run


class EnvelopeResponse(JSONResponse):
    """JSON as UTF-8, any text that is not (a lone surrogate a client sent) as its JSON escape."""

    def render(self, content: Any) -> bytes:
        return documents.dumps(content).encode("utf-8", "backslashreplace")


def _error_response(status: int, kind: str, message: str, details: dict[str, Any] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return EnvelopeResponse(documents.failure(kind, message, details), status_code=status, headers=headers)


def _ok(message: str, data: dict[str, Any], status: int = 200) -> JSONResponse:
    return EnvelopeResponse(documents.success(message, data), status_code=status)


HTTP_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


class AuditAndLimits:
    """ASGI middleware around every HTTP request: bodies over the size limit are refused (413),
    and a request that changed something (POST, DELETE, an export) or that was refused becomes
    a row of ``audit_log`` once its response is sent."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], *, api: FastAPI, max_body: int) -> None:
        self.app = app
        self.api = api
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        access: Access = self.api.state.access
        if access.insecure_local and not _from_this_machine(scope):
            # no token: only this machine's own clients, never a web page it visits (DNS rebinding, cross-site requests)
            await self._audit(scope, state, 403, "not a request from this machine (Host or Origin) to a server without a token")
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "only this machine's clients"})
                return
            await _error_response(403, "forbidden", "this server has no token: it answers only requests from this machine, to a loopback Host")(
                scope, receive, send
            )
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent: dict[str, int] = {}
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self._audit(scope, state, 413, f"body over {self.max_body} bytes")
            await _error_response(413, "payload_too_large", f"the request body is over {self.max_body} bytes")(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in (scope.get("query_string") or b""):
            await self._audit(scope, state, 422, "NUL character in the path or query")
            await _error_response(422, "validation_error", "NUL characters are not allowed in a request's path or query")(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, f"the request body is over {self.max_body} bytes")
            return message

        async def watched(message: Message) -> None:
            # the audit row is written before the response leaves: a client that has its answer
            # finds the request in the audit log
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                await self._audit(scope, state, message["status"], state.get("audit_detail"))
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except BaseException:
            if "status" not in sent:  # it failed before any answer: audited as a failure
                await self._audit(scope, state, 500, state.get("audit_detail") or "internal error")
            raise

    async def _audit(self, scope: Scope, state: dict[str, Any], status: int, detail: str | None) -> None:
        method = scope.get("method", "WEBSOCKET")
        changes = method in ("POST", "PUT", "PATCH", "DELETE") or state.get("audit_change", False)
        if not changes and status < 400:
            return
        route = scope.get("route")
        action = f"{method} {getattr(route, 'path', None) or scope['path']}"
        caller: Caller | None = state.get("caller")
        client = scope.get("client")
        entry: dict[str, Any] = {
            "action": action,
            "outcome": "succeeded" if status < 400 else "failed" if status >= 500 else "refused",
            "status_code": status,
            "actor": caller.name if caller else None,
            "role": caller.role if caller else None,
            "target_run": state.get("audit_run") or (scope.get("path_params") or {}).get("migration_id"),
            "parameters": state.get("audit_parameters") or {},
            "detail": detail,
            "client": client[0] if client else None,
        }
        try:
            await run_in_threadpool(audit.record, self.api.state.engine, **entry)
        except Exception:  # noqa: BLE001 - the request is answered all the same; the failure to audit is logged loudly
            log.exception("could not write the audit log entry for %s", action)


def create_app(*, access: Access, database_url: str | None = None, backup_directory: str | None = None, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """The API over the target ``database_url`` (default: ``$DATABASE_URL``, else the SQLite
    default), its schema created or upgraded now."""
    url = database_url or database_url_from_env()
    api = FastAPI(
        title="migration-assets",
        version="1",
        summary="Migrate a legacy content store into one relational database: validate, start, follow, undo.",
        description=(
            "Every request needs `Authorization: Bearer <token>` (401 without a valid one); starting, rolling back, cleaning up, "
            "exporting, importing and reading the audit log need the `admin` role (403 otherwise). Paths in requests must be "
            "absolute and lie under the server's allowed roots. Every response is the envelope `{success, message, data, timestamp}`, "
            "every error `{success: false, error, message, details: {field_errors}, timestamp}`.\n\n"
            "Live progress of a migration: the WebSocket `/api/v1/migration/ws/{migration_id}` (the same bearer token, or "
            "`?access_token=`) sends `progress` events (percent, files done of all, records succeeded and failed, files/minute, "
            "memory) until the run ends, then one `finished` event with its totals, and closes."
        ),
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    api.state.url = url
    api.state.engine = get_engine(url)
    api.state.access = access
    api.state.backup_directory = backup_directory or backup_directory_from_env()
    api.add_middleware(AuditAndLimits, api=api, max_body=max_body)
    _handlers(api)
    _routes(api)
    return api


def _handlers(api: FastAPI) -> None:
    @api.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        request.state.audit_detail = str(exc)
        if exc.run:
            request.state.audit_run = exc.run
        details = {"field_errors": exc.field_errors} if exc.field_errors else None
        return _error_response(exc.status, exc.kind, str(exc), details)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        field_errors: dict[str, list[str]] = {}
        for error in exc.errors():
            field_errors.setdefault(_field(tuple(error.get("loc", ()))), []).append(str(error.get("msg", "invalid")))
        if isinstance(exc.body, dict):
            request.state.audit_parameters = exc.body
        message = "Invalid request data: " + "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in field_errors.items())
        request.state.audit_detail = message
        return _error_response(422, "validation_error", message[:2000], {"field_errors": field_errors})

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = HTTP_KINDS.get(exc.status_code, "error")
        message = str(exc.detail) if exc.status_code != 404 else f"no such endpoint: {request.method} {request.url.path}"
        request.state.audit_detail = message
        return _error_response(exc.status_code, kind, message)

    @api.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        from migration_assets.cli.common import one_line

        message = f"the target database cannot be used: {one_line(exc)}"
        request.state.audit_detail = message
        return _error_response(503, "database_error", message)

    @api.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error in %s %s", request.method, request.url.path)
        return _error_response(500, "internal_error", f"{type(exc).__name__}: the server failed; its log has the details")


bearer = HTTPBearer(auto_error=False, description="An API token: MIGRATION_API_TOKEN, or one of MIGRATION_API_TOKENS_FILE.")


def caller(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Caller:
    """The token's caller; 401 without a valid token."""
    found = request.app.state.access.caller(credentials.credentials if credentials else None)
    if found is None:
        raise ApiError(401, "unauthorized", "a valid API token is needed: send Authorization: Bearer <token>")
    request.state.caller = found
    return found


def admin(request: Request, who: Annotated[Caller, Depends(caller)]) -> Caller:
    """The caller, when an admin; 403 for any other role."""
    if not who.is_admin:
        raise ApiError(403, "forbidden", f"token {who.name!r} has role {who.role!r}; {request.method} {request.url.path} needs the admin role")
    return who


Viewer = Annotated[Caller, Depends(caller)]
Admin = Annotated[Caller, Depends(admin)]
RunId = Annotated[str, ApiPath(min_length=1, max_length=200, description="The migration (run) id.")]


def _engine(request: Request) -> Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def _paths(request: Request, fields: dict[str, str | None]) -> dict[str, Path | None]:
    """Each named path resolved under the allowed roots, or one 422 naming every bad field."""
    access: Access = request.app.state.access
    resolved: dict[str, Path | None] = {}
    errors: dict[str, list[str]] = {}
    for name, value in fields.items():
        if value is None:
            resolved[name] = None
            continue
        try:
            resolved[name] = access.allowed_path(value)
        except PathNotAllowed as exc:
            errors[name] = [str(exc)]
    if errors:
        raise ApiError(422, "validation_error", "Invalid request data: a path is not allowed", errors)
    return resolved


def _folder_errors(source: Path, field: str = "source_directory") -> None:
    try:
        is_folder = source.is_dir()
    except OSError as exc:
        raise ApiError(422, "validation_error", f"{source} cannot be used", {field: [f"{source} cannot be used: {exc.strerror or exc}"]}) from None
    if not is_folder:
        raise ApiError(422, "validation_error", f"{source} is not a folder", {field: [f"{source} does not exist or is not a folder"]})
    if not os.access(source, os.R_OK | os.X_OK):
        raise ApiError(422, "validation_error", f"{source} cannot be read", {field: [f"{source} cannot be read by the server"]})


def _writable(folder: Path, field: str) -> None:
    from migration_assets.outputs import OutputNotWritable, check_writable

    try:
        check_writable(folder)
    except OutputNotWritable as exc:
        raise ApiError(422, "validation_error", str(exc), {field: [str(exc)]}) from None


def _rules(path: Path | None) -> None:
    from migration_assets.rules import RulesError, load_rules

    if path is None:
        return
    try:
        load_rules(str(path))
    except RulesError as exc:
        raise ApiError(422, "validation_error", str(exc), {"rules_file": [str(exc)]}) from None


def _config(request: Request, body: MigrationRequest, *, writes_backup: bool) -> MigrationConfig:
    """The request's MigrationConfig, its paths allowed and usable."""
    request.state.audit_parameters = body.model_dump()
    paths = _paths(
        request,
        {
            "source_directory": body.source_directory,
            "backup_directory": body.backup_directory or str(Path(request.app.state.backup_directory).resolve()),
            "rules_file": body.rules_file,
        },
    )
    source, backup, rules = paths["source_directory"], paths["backup_directory"], paths["rules_file"]
    assert source is not None and backup is not None
    _folder_errors(source)
    _rules(rules)
    if writes_backup:
        _writable(backup, "backup_directory")
    config = MigrationConfig(
        **{**body.model_dump(), "source_directory": str(source), "backup_directory": str(backup), "rules_file": str(rules) if rules else None}
    )
    if writes_backup:
        from migration_assets.service import SourceUnusable, check_backup_outside_source

        try:
            check_backup_outside_source(config)
        except SourceUnusable as exc:
            raise ApiError(422, "validation_error", str(exc), {"backup_directory": [str(exc)]}) from None
    return config


def _known(request: Request, migration_id: str) -> None:
    from migration_assets.status import UnknownRun, known_run

    try:
        known_run(_engine(request), migration_id)
    except UnknownRun as exc:
        raise ApiError(404, "unknown_run", str(exc), run=migration_id[:64]) from None


def _routes(api: FastAPI) -> None:  # noqa: C901 - one place lists every endpoint
    responses: dict[int | str, dict[str, Any]] = {**ERRORS, **SERVER_ERRORS}

    @api.post(f"{PREFIX}/migration/validate", tags=["migration"], response_model=Envelope, responses=responses)
    def validate(request: Request, body: ValidateRequest, who: Viewer) -> JSONResponse:
        """Parse and validate a source under its rules without writing any database; what is
        invalid and why, per file, record and rule (the CLI's ``validate --json``)."""
        from migration_assets.operations import validation_message
        from migration_assets.service import validate_source

        report = validate_source(_config(request, body, writes_backup=False))
        return _ok(validation_message(report), report)

    @api.post(
        f"{PREFIX}/migration/start",
        tags=["migration"],
        status_code=202,
        response_model=Envelope,
        responses={200: {"model": Envelope, "description": "dry_run: the planned counts; nothing was started."}, **responses},
    )
    def start(request: Request, body: MigrationRequest, who: Admin) -> JSONResponse:
        """Start a migration as a run of the Dagster ``migrate`` job (visible in the UI, tagged
        with who started it) and answer at once with its id; follow it on ``status/{id}`` or the
        WebSocket ``ws/{id}``. With ``dry_run`` nothing starts: the planned counts come back."""
        from migration_assets.launch import AlreadyRunning, start_migration

        config = _config(request, body, writes_backup=True)
        if config.dry_run:
            from migration_assets.service import dry_run

            report = dry_run(config, request.app.state.url)
            return _ok("Dry run: nothing was written", report)
        tags = {"migration/started_by": who.name, "migration/role": who.role, "migration/launcher": "api"}
        try:
            run_id = start_migration(config, request.app.state.url, tags=tags)
        except AlreadyRunning as exc:
            raise ApiError(409, "conflict", str(exc), run=exc.run_id) from None
        except OSError as exc:  # the server could not start the process (recorded as a failed run)
            raise ApiError(503, "failed", f"the migration could not be launched: {exc.strerror or exc}") from None
        request.state.audit_run = run_id
        data = {
            "migration_id": run_id,
            "status": "running",
            "status_url": f"{PREFIX}/migration/status/{run_id}",
            "websocket_url": f"{PREFIX}/migration/ws/{run_id}",
            "source_directory": config.source_directory,
            "backup_directory": config.backup_directory,
        }
        return _ok(f"Migration {run_id} started", data, status=202)

    @api.get(f"{PREFIX}/migration/status/{{migration_id}}", tags=["migration"], response_model=Envelope, responses=responses)
    def status(request: Request, migration_id: RunId, who: Viewer) -> JSONResponse:
        """A run's state, its live progress while it runs, its totals and check results once done
        (the CLI's ``status --json``)."""
        from migration_assets.operations import status_document

        _known(request, migration_id)
        return _ok(*status_document(_engine(request), request.app.state.url, migration_id))

    @api.get(f"{PREFIX}/migration/history", tags=["migration"], response_model=Envelope, responses=responses)
    def history(
        request: Request,
        who: Viewer,
        limit: Annotated[int, Query(ge=1, le=1000, description="How many runs, newest first.")] = 20,
        source: Annotated[str | None, Query(max_length=4096, description="Only runs of this source directory.")] = None,
        group: Annotated[
            str | None,
            Query(
                max_length=255,
                pattern=r"^[^\x00]*$",
                description="Only the runs of this group of waves (migrate --waves, a UI backfill), with its summary.",
            ),
        ] = None,
    ) -> JSONResponse:
        """One entry per run, newest first (the CLI's ``history --json``)."""
        from migration_assets.operations import history_document
        from migration_assets.status import UnknownRun

        folder = _paths(request, {"source": source})["source"] if source else None
        try:
            return _ok(*history_document(_engine(request), limit=limit, source=str(folder) if folder else None, group=group))
        except UnknownRun as exc:
            raise ApiError(404, "unknown_run", str(exc)) from None

    @api.post(f"{PREFIX}/migration/rollback/{{migration_id}}", tags=["migration"], response_model=Envelope, responses=responses)
    def rollback(request: Request, migration_id: RunId, who: Admin, body: Annotated[RollbackRequest | None, Body()] = None) -> JSONResponse:
        """Restore the target to its state before the run (and with ``cascade`` before the runs
        built on it). A running migration is refused; ``dry_run`` only says what would be undone."""
        from migration_assets.backup import BackupError
        from migration_assets.operations import rollback_document

        options = body or RollbackRequest()
        request.state.audit_parameters = options.model_dump()
        _known(request, migration_id)
        try:
            message, document = rollback_document(
                _engine(request), request.app.state.url, run_id=migration_id, confirm=not options.dry_run, cascade=options.cascade
            )
        except BackupError as exc:
            raise ApiError(409, "refused", f"rollback refused: {exc}") from None
        return _ok(message, document)

    @api.delete(f"{PREFIX}/migration/cleanup/{{migration_id}}", tags=["migration"], response_model=Envelope, responses=responses)
    def cleanup(
        request: Request,
        migration_id: RunId,
        who: Admin,
        confirm: Annotated[bool, Query(description="Needed when the run could still be rolled back (it no longer can after).")] = False,
    ) -> JSONResponse:
        """Remove a run's backup files and staging, and record it; content is never touched."""
        from migration_assets.cleanup import CleanupRefused, cleanup_run

        request.state.audit_parameters = {"confirm": confirm}
        _known(request, migration_id)
        try:
            document = cleanup_run(_engine(request), migration_id, confirm=confirm)
        except CleanupRefused as exc:
            raise ApiError(409, "refused", str(exc)) from None
        return _ok(document["message"], document)

    @api.get(f"{PREFIX}/migration/stats", tags=["migration"], response_model=Envelope, responses=responses)
    def stats(request: Request, who: Viewer) -> JSONResponse:
        """What the target holds: content by format, type and source; knowledge and embeddings;
        runs by state; rejections by reason and rule (the CLI's ``stats --json``)."""
        from migration_assets.operations import stats_document

        return _ok(*stats_document(_engine(request)))

    @api.get(f"{PREFIX}/migration/export", tags=["migration"], response_model=Envelope, responses=responses)
    def export(
        request: Request,
        who: Admin,
        output: Annotated[
            str | None, Query(max_length=4096, description="Folder on the server for the export (default: BACKUP/exports/export-<time>).")
        ] = None,
    ) -> JSONResponse:
        """Export the current content items (JSON Lines with a sha256 manifest) into a folder on
        the server, which ``import`` reads back."""
        from migration_assets.operations import export_document
        from migration_assets.outputs import OutputNotWritable

        request.state.audit_change = True
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        wanted = output or str(Path(request.app.state.backup_directory).resolve() / "exports" / f"export-{stamp}")
        request.state.audit_parameters = {"output": wanted}
        folder = _paths(request, {"output": wanted})["output"]
        assert folder is not None
        try:
            return _ok(*export_document(_engine(request), request.app.state.url, folder))
        except OutputNotWritable as exc:
            raise ApiError(422, "validation_error", str(exc), {"output": [str(exc)]}) from None

    @api.post(f"{PREFIX}/migration/import", tags=["migration"], response_model=Envelope, responses=responses)
    def import_(request: Request, body: ImportRequest, who: Admin) -> JSONResponse:
        """Import an export as a run of its own: manifest verified, every line checked against the
        rules, batches journaled (roll it back like a migration), knowledge and embeddings rebuilt."""
        from migration_assets.backup import BackupError
        from migration_assets.operations import import_document
        from migration_assets.outputs import OutputNotWritable
        from migration_assets.transfer import ExportError

        request.state.audit_parameters = body.model_dump()
        default_backup = str(Path(request.app.state.backup_directory).resolve())
        paths = _paths(
            request,
            {"input_directory": body.input_directory, "backup_directory": body.backup_directory or default_backup, "rules_file": body.rules_file},
        )
        source, backup, rules = paths["input_directory"], paths["backup_directory"], paths["rules_file"]
        assert source is not None and backup is not None
        _folder_errors(source, "input_directory")
        _rules(rules)
        _writable(backup, "backup_directory")
        config = MigrationConfig(
            source_directory=str(source), backup_directory=str(backup), validate_data=body.validate_data, rules_file=str(rules) if rules else None
        )
        try:
            message, document = import_document(config, request.app.state.url, source)
        except (ExportError, OutputNotWritable) as exc:
            raise ApiError(422, "refused", f"import refused: {exc}", {"input_directory": [str(exc)]}) from None
        except BackupError as exc:
            raise ApiError(409, "failed", f"import failed: {exc}") from None
        request.state.audit_run = document["run_id"]
        return _ok(message, document)

    @api.get(f"{PREFIX}/content/items", tags=["content"], response_model=Envelope, responses=responses)
    def content_items(
        request: Request,
        who: Viewer,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=500)] = 50,
        source: Annotated[str | None, Query(max_length=4096, description="Source directory the items came from.")] = None,
        format: Annotated[str | None, Query(max_length=20, description="Source format: json, jsonl, markdown, text, csv.")] = None,
        type: Annotated[str | None, Query(max_length=100, description="Content type.")] = None,
        run: Annotated[str | None, Query(max_length=64, description="The run that last wrote them.")] = None,
    ) -> JSONResponse:
        """Content items page by page, in id order, filtered by source, format, type or run."""
        from migration_assets.content_items import list_items

        document = list_items(_engine(request), page=page, per_page=per_page, source=source, source_format=format, content_type=type, run=run)
        return _ok(f"{document['total']} content items; page {page} of {max(document['pages'], 1)}", document)

    @api.get(f"{PREFIX}/content/items/legacy/{{legacy_id:path}}", tags=["content"], response_model=Envelope, responses=responses)
    def content_item_by_legacy_id(request: Request, legacy_id: str, who: Viewer) -> JSONResponse:
        """One content item by its legacy id, whole, with its knowledge chunks."""
        return _item(request, legacy_id=legacy_id)

    @api.get(f"{PREFIX}/content/items/{{item_id}}", tags=["content"], response_model=Envelope, responses=responses)
    def content_item(
        request: Request, item_id: Annotated[int, ApiPath(ge=1, le=2**63 - 1, description="The content item's id.")], who: Viewer
    ) -> JSONResponse:
        """One content item by id, whole, with its knowledge chunks."""
        return _item(request, item_id=item_id)

    @api.get(f"{PREFIX}/search", tags=["content"], response_model=Envelope, responses=responses)
    def search(
        request: Request,
        who: Viewer,
        q: Annotated[str, Query(min_length=1, max_length=1000, description="What to look for: words, names, codes, or a question.")],
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        source: Annotated[str | None, Query(max_length=4096, description="Source directory the items came from.")] = None,
        format: Annotated[str | None, Query(max_length=20, description="Source format.")] = None,
        type: Annotated[str | None, Query(max_length=100, description="Content type.")] = None,
        category: Annotated[str | None, Query(max_length=255, description="Category.")] = None,
        tag: Annotated[str | None, Query(max_length=255, description="A tag the items carry.")] = None,
    ) -> JSONResponse:
        """The content items that best match ``q``, by meaning (the stored vectors of the
        server's embedding provider) and by words (the full-text index), fused by rank (the
        CLI's ``search --json``)."""
        from migration_assets.operations import search_document
        from migration_assets.search import SearchFilters

        filters = SearchFilters(source=source, format=format, type=type, category=category, tag=tag)
        return _ok(*search_document(_engine(request), q, limit=limit, filters=filters))

    @api.get(f"{PREFIX}/audit", tags=["audit"], response_model=Envelope, responses=responses)
    def audit_log(
        request: Request,
        who: Admin,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before: Annotated[int | None, Query(ge=1, le=2**62, description="Only entries older than this entry id (paging).")] = None,
        actor: Annotated[str | None, Query(max_length=100)] = None,
        outcome: Annotated[str | None, Query(max_length=20, description="succeeded, refused or failed.")] = None,
        run: Annotated[str | None, Query(max_length=64)] = None,
    ) -> JSONResponse:
        """The audit log, newest first: every change and every refused request (admins only)."""
        document = audit.entries(_engine(request), limit=limit, before=before, actor=actor, outcome=outcome, run=run)
        return _ok(f"{len(document['entries'])} of {document['total']} audit entries", document)

    @api.websocket(f"{PREFIX}/migration/ws/{{migration_id}}")
    async def progress(websocket: WebSocket, migration_id: str) -> None:
        """Live progress of a run until it ends, then one ``finished`` event with its totals."""
        await _stream_progress(websocket, migration_id)


def _item(request: Request, **which: Any) -> JSONResponse:
    from migration_assets.content_items import UnknownItem, get_item

    try:
        item = get_item(_engine(request), **which)
    except UnknownItem as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return _ok(f"Content item {item['id']} ({item['legacy_id']})", item)


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _from_this_machine(scope: Scope) -> bool:
    """A request whose Host names this machine's loopback and whose Origin, if any, is one too."""
    from urllib.parse import urlsplit

    headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers") or []}
    host = headers.get("host", "")
    try:
        host_name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    if host_name not in LOOPBACK_HOSTS and host_name.strip("[]") not in LOOPBACK_HOSTS:
        return False
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    try:
        origin_host = urlsplit(origin).hostname or ""
    except ValueError:
        return False
    return origin_host in LOOPBACK_HOSTS or origin_host.strip("[]") in LOOPBACK_HOSTS


async def _stream_progress(websocket: WebSocket, migration_id: str) -> None:
    from migration_assets.operations import status_document
    from migration_assets.status import UnknownRun, final_event, progress_event

    api = websocket.app
    header = websocket.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else websocket.query_params.get("access_token")
    who = api.state.access.caller(token)
    client = websocket.client.host if websocket.client else None
    if who is None:
        await run_in_threadpool(
            audit.record,
            api.state.engine,
            action=f"WEBSOCKET {PREFIX}/migration/ws/{{migration_id}}",
            outcome="refused",
            status_code=401,
            target_run=migration_id[:64],
            detail="no valid API token",
            client=client,
        )
        await websocket.close(code=1008, reason="a valid API token is needed")
        return
    await websocket.accept()
    if "\x00" in migration_id or len(migration_id) > 200:
        await websocket.send_json({"event": "error", **documents.failure("unknown_run", "no migration has that id")})
        await websocket.close(code=4404, reason="unknown migration id")
        return

    def read() -> dict[str, Any]:
        return status_document(api.state.engine, api.state.url, migration_id)[1]

    try:
        try:
            document = await run_in_threadpool(read)
        except UnknownRun as exc:
            await websocket.send_json({"event": "error", **documents.failure("unknown_run", str(exc))})
            await websocket.close(code=4404, reason="unknown migration id")
            return
        last: dict[str, Any] | None = None
        while document["status"] == "running":
            event = progress_event(document)
            if event != last:
                await websocket.send_json({**event, "timestamp": documents.timestamp()})
                last = event
            await asyncio.sleep(WS_POLL_SECONDS)
            document = await run_in_threadpool(read)
        await websocket.send_json({**progress_event(document), "timestamp": documents.timestamp()})
        await websocket.send_json({**final_event(document), "timestamp": documents.timestamp()})
        await websocket.close(code=1000)
    except (WebSocketDisconnect, RuntimeError):
        return  # the client left
    except SQLAlchemyError as exc:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.send_json({"event": "error", **documents.failure("database_error", f"the target database cannot be used: {exc}")})
            await websocket.close(code=1011, reason="the target database cannot be used")
