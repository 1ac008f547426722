"""Accounts, API tokens and roles: who may call which desk endpoint.

Each account has exactly one role, belongs to one organisation and has a mandatory end date (SNDS
rule: every habilitation ends). Tokens are random 256-bit strings shown once; the desk stores only
their SHA-256 (a slow password hash adds nothing for tokens of that entropy).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from fastapi import Request
from sqlalchemy import select

from fedsante.common.errors import Forbidden, Unauthorized
from fedsante.desk.db import Account, Organisation

Role = Literal["holder", "reviewer", "operator", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("holder", "reviewer", "operator", "auditor", "admin")
ROLE_NAMES = {
    "holder": "project holder",
    "reviewer": "desk reviewer",
    "operator": "node operator (hospital data officer)",
    "auditor": "auditor / DPO",
    "admin": "desk administrator",
}


def new_token() -> str:
    return "fst_" + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request."""

    account_id: int
    name: str
    role: Role
    organisation_id: int
    organisation: str


def bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: Request, today: date | None = None) -> Principal:
    """The account behind the request's bearer token; refuses unknown, disabled and ended accounts."""
    token = bearer(request)
    if not token:
        raise Unauthorized("This endpoint needs an account token: send 'Authorization: Bearer <token>'. "
                           "A desk admin creates accounts with 'fedsante account create'.")
    today = today or datetime.now(UTC).date()
    with request.app.state.desk.sessions() as session:
        account = session.scalar(select(Account).where(Account.token_sha256 == token_sha256(token)))
        if account is None:
            raise Unauthorized("Unknown or revoked token. Ask the desk admin for a new account token.")
        request.state.account = account.name  # named in the audit chain if the request is refused
        if account.disabled_at is not None:
            raise Unauthorized(f"Account {account.name!r} was disabled on {account.disabled_at:%Y-%m-%d}.")
        if account.end_date < today:
            raise Unauthorized(f"Account {account.name!r} ended on {account.end_date.isoformat()}; "
                               "ask the desk admin to renew it (every account has an end date).")
        organisation = session.get(Organisation, account.organisation_id)
        return Principal(account.id, account.name, account.role, account.organisation_id, organisation.name)


class Needs:
    """A FastAPI dependency: the caller must hold one of ``roles``. ``roles`` is read by the tests."""

    def __init__(self, *roles: Role) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown or not roles:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        self.roles = frozenset(roles)

    def __call__(self, request: Request) -> Principal:
        principal = authenticate(request)
        request.state.principal = principal
        if principal.role not in self.roles:
            allowed = " or ".join(ROLE_NAMES[r] for r in ROLES if r in self.roles)
            raise Forbidden(f"{request.method} {request.url.path} is for the {allowed} role; account "
                            f"{principal.name!r} is a {ROLE_NAMES[principal.role]}.")
        return principal


ANY_ROLE = Needs(*ROLES)
