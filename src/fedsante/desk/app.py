"""The desk service: a FastAPI application (OpenAPI docs at /docs)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from fedsante import __version__
from fedsante.desk.db import make_sessionmaker
from fedsante.desk.runs import RunService
from fedsante.desk.settings import DeskSettings
from fedsante.errors import FedsanteError, Unauthorized, field_problems
from fedsante.federation.broker import Broker

log = logging.getLogger("fedsante.desk")


def error_body(status: int, message: str, errors: list[str] | None = None) -> dict:
    """The one JSON error shape of the desk."""
    return {"ok": False, "error": message, "errors": errors or [message], "status": status}


def ensure_admin_token(data_dir: Path) -> str:
    """Return the desk's admin token, creating ``<data_dir>/admin-token`` (mode 0600) if absent."""
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


class DeskState:
    """What the request handlers share: database sessions, broker, runs, admin token hash."""

    def __init__(self, settings: DeskSettings, admin_token: str) -> None:
        self.settings = settings
        self.sessions = make_sessionmaker(settings.effective_database_url)
        self.broker = Broker(grace=settings.node_grace_seconds)
        self.runs = RunService(self.sessions, self.broker, round_timeout=settings.round_timeout_seconds)
        self._admin_hash = hashlib.sha256(admin_token.encode()).digest()

    def check_admin(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not token or not hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._admin_hash):
            raise Unauthorized(
                "This endpoint needs the desk admin token: send 'Authorization: Bearer <token>' "
                "(the token is in <desk data dir>/admin-token)."
            )


def create_app(settings: DeskSettings | None = None, *, admin_token: str | None = None) -> FastAPI:
    """Build the desk application. Without ``admin_token`` it is read from (or created in) the data dir."""
    settings = settings or DeskSettings()
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    state = DeskState(settings, admin_token or ensure_admin_token(settings.data_dir))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await state.runs.shutdown()

    app = FastAPI(title="fedsante desk", version=__version__, lifespan=lifespan,
                  description="Regional AI desk: organisations, nodes, projects, federated runs.")
    app.state.desk = state

    @app.exception_handler(FedsanteError)
    async def _fedsante_error(_request: Request, exc: FedsanteError) -> JSONResponse:
        return JSONResponse(error_body(exc.status, exc.message, exc.errors), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_problems(exc)
        return JSONResponse(error_body(422, "Invalid request: " + "; ".join(errors), errors), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    from fedsante.desk import node_routes, routes

    app.include_router(routes.router)
    app.include_router(node_routes.router)
    return app
