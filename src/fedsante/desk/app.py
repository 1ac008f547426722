"""The desk service: a FastAPI application (OpenAPI docs at /docs).

The public portal's pages are added on top by :func:`fedsante.portal.app.create_app`.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.exceptions import HTTPException

from fedsante import __version__
from fedsante.audit import AuditLog
from fedsante.common.errors import ConfigError, FedsanteError, field_problems
from fedsante.desk import catalogue, limits, node_routes, objections, project_routes, routes
from fedsante.desk.access import new_token, token_sha256
from fedsante.desk.charter import load_charter
from fedsante.desk.headers import SecurityHeaders
from fedsante.desk.db import Account, Organisation, make_sessionmaker
from fedsante.desk.keyring import Keyring
from fedsante.desk.runs import RunService
from fedsante.desk.settings import DeskSettings
from fedsante.federation.auth import NonceCache
from fedsante.federation.broker import Broker

log = logging.getLogger("fedsante.desk")


def error_body(status: int, message: str, errors: list[str] | None = None) -> dict:
    """The one JSON error shape of the desk."""
    return {"ok": False, "error": message, "errors": errors or [message], "status": status}


def ensure_admin_token(data_dir: Path) -> str:
    """Return the bootstrap admin token, creating ``<data_dir>/admin-token`` (mode 0600) if absent."""
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


class DeskState:
    """What the request handlers share: database sessions, broker, runs, keys, charter, audit chain."""

    def __init__(self, settings: DeskSettings) -> None:
        self.settings = settings
        self.sessions = make_sessionmaker(settings.effective_database_url)
        self.broker = Broker(grace=settings.node_grace_seconds)
        self.nonces = NonceCache()  # node requests are accepted once, and only if signed after this start
        self.keyring = Keyring(settings.data_dir)
        self.charter = load_charter()
        self.runs = RunService(self)
        self._audit: tuple[str, AuditLog] | None = None
        self._audit_lock = threading.Lock()

    def audit_log(self) -> AuditLog:
        """The desk's chain, signed with the current desk key (re-read after a rotation)."""
        info, key = self.keyring.current()
        with self._audit_lock:
            if self._audit is None or self._audit[0] != info.key_id:
                self._audit = (info.key_id, AuditLog(self.settings.audit_path, key, "desk"))
            return self._audit[1]

    def record(self, actor: str, action: str, subject: str, details: dict | None = None) -> None:
        """Append one event to the desk's audit chain."""
        self.audit_log().append(actor, action, subject, details or {})

    def bootstrap(self, admin_token: str | None) -> None:
        """First start: the desk's organisation, its signing key and an admin account (token file 0600)."""
        self.keyring.ensure()
        with self.sessions() as session:
            if session.scalar(select(Account).where(Account.role == "admin")) is not None:
                return
            org = session.scalar(select(Organisation).where(Organisation.name == self.settings.organisation))
            if org is None:
                org = Organisation(name=self.settings.organisation, kind="desk")
                session.add(org)
                session.flush()
            token = admin_token or ensure_admin_token(self.settings.data_dir)
            end = datetime.now(UTC).date() + timedelta(days=365)
            session.add(Account(name="admin", organisation_id=org.id, role="admin", end_date=end,
                                token_sha256=token_sha256(token)))
            session.commit()
        self.record("system", "account.created", "admin", {"role": "admin", "end_date": end.isoformat(),
                                                             "bootstrap": True})


def write_admin_token(data_dir: Path, token: str) -> Path:
    """Replace ``<data_dir>/admin-token`` with ``token`` (mode 0600, never readable by others meanwhile)."""
    path = data_dir / "admin-token"
    temporary = data_dir / f".admin-token.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(temporary, path)
    return path


def recover_admin(settings: DeskSettings, name: str = "admin") -> tuple[str, Path]:
    """Create or re-enable the admin account ``name`` with a new token, from the desk's host (file-system access
    to its data directory is the proof of authority). Returns ``("created" | "re-enabled", token file)``;
    the recovery is recorded in the desk's audit chain."""
    if not (settings.data_dir / "desk.db").exists() and settings.database_url is None:
        raise ConfigError(f"{settings.data_dir} holds no desk database: pass the data folder of an existing desk "
                          "(a new desk creates its admin at first start).")
    state = DeskState(settings)
    state.keyring.ensure()
    token = new_token()
    end = datetime.now(UTC).date() + timedelta(days=365)
    with state.sessions() as session:
        account = session.scalar(select(Account).where(Account.name == name))
        if account is None:
            org = session.scalar(select(Organisation).where(Organisation.name == settings.organisation))
            if org is None:
                org = Organisation(name=settings.organisation, kind="desk")
                session.add(org)
                session.flush()
            account = Account(name=name, organisation_id=org.id, role="admin", end_date=end, token_sha256="")
            session.add(account)
            outcome = "created"
        else:
            outcome = "re-enabled"
            previous = {"role": account.role, "disabled": account.disabled_at is not None,
                        "end_date": account.end_date.isoformat()}
        account.role, account.disabled_at, account.end_date = "admin", None, end
        account.token_sha256 = token_sha256(token)
        session.commit()
    path = write_admin_token(settings.data_dir, token)
    details = {"role": "admin", "end_date": end.isoformat(), "recovery": outcome, "local": True}
    if outcome == "re-enabled":
        details["previous"] = previous
    state.record("system", "account.recovered", name, details)
    return outcome, path


def create_app(settings: DeskSettings | None = None, *, admin_token: str | None = None) -> FastAPI:
    """Build the desk application. Without ``admin_token`` it is read from (or created in) the data dir."""
    settings = settings or DeskSettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = DeskState(settings)
    state.bootstrap(admin_token)

    removed = state.audit_log().prune(settings.audit_retention_days)  # refuses a tampered chain
    if removed:
        log.info("audit: removed %d entries older than %d days", removed, settings.audit_retention_days)
    state.runs.recover()  # runs a previous process left 'running' never stay so

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await state.runs.shutdown()

    app = FastAPI(title="fedsante desk", version=__version__, lifespan=lifespan,
                  description="Regional AI desk: accounts, projects, charter review, signed approvals, federated runs.")
    app.state.desk = state
    app.add_middleware(limits.BodyLimit, limit=settings.max_body_bytes, node_limit=settings.max_node_body_bytes)
    inner = app.build_middleware_stack  # outermost, so that even a 500 page carries the security headers
    app.build_middleware_stack = lambda: SecurityHeaders(inner())  # type: ignore[method-assign]

    @app.exception_handler(FedsanteError)
    async def _fedsante_error(request: Request, exc: FedsanteError) -> JSONResponse:
        account = getattr(request.state, "account", None)
        if exc.status in (401, 403) and account:  # refusals of a known account are audited
            state.record(account, "access.refused", f"{request.method} {request.url.path}",
                         {"status": exc.status, "reason": exc.message})
        return JSONResponse(error_body(exc.status, exc.message, exc.errors), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_problems(exc)
        return JSONResponse(error_body(422, "Invalid request: " + "; ".join(errors), errors), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    app.include_router(routes.router)
    app.include_router(project_routes.router)
    app.include_router(node_routes.router)
    app.include_router(catalogue.router)
    for router in (objections.public, objections.hospitals, objections.node):
        app.include_router(router)
    return app
