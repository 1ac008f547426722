"""Desk API: organisations, accounts, nodes, catalogue, keys, audit heads and runs.

Every endpoint names the roles allowed to call it (``Needs(...)``); the few public ones (health,
desk keys, charter, audit heads) are what anyone needs to verify the desk's work.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fedsante import __version__
from fedsante.desk.access import ANY_ROLE, Needs, Principal, new_token, token_sha256
from fedsante.desk.db import Account, Approval, Node, Organisation, Project, Run, TaskRecord, utcnow
from fedsante.desk.release import automatic_checks, release, releasers_of, visible
from fedsante.desk.schemas import ERROR_RESPONSES, AccountIn, NodeIn, OrganisationIn, ReleaseIn, RunIn, RunOut
from fedsante.common.errors import BadRequest, Conflict, Forbidden, NotFound
from fedsante.algorithms.catalogue import catalogue
from fedsante.common.keys import parse_public_key

router = APIRouter(responses=ERROR_RESPONSES)
api = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
Admin = Annotated[Principal, Depends(Needs("admin"))]
Anyone = Annotated[Principal, Depends(ANY_ROLE)]
MAX_ACCOUNT_YEARS = 3


@router.get("/health", tags=["service"])
def health() -> dict:
    """Liveness and version."""
    return {"ok": True, "service": "fedsante-desk", "version": __version__}


@api.get("/keys", tags=["public"])
def desk_keys(request: Request) -> list[dict]:
    """Every signing key of this desk (current and retired), to verify approvals and the audit chain."""
    return [vars(k) for k in request.app.state.desk.keyring.keys()]


@api.get("/charter", tags=["public"])
def charter(request: Request) -> dict:
    """The ethics charter projects are reviewed against (id, version, digest, policy)."""
    c = request.app.state.desk.charter
    return {"id": c.id, "version": c.version, "sha256": c.digest, "title_fr": c.title_fr, "title_en": c.title_en,
            "policy": asdict(c.policy),
            "principles": [{"id": p.id, "name_fr": p.name_fr, "name_en": p.name_en,
                            "checks": [k.id for k in p.checks], "questions": [asdict(q) for q in p.questions]}
                           for p in c.principles]}


@api.get("/audit/heads", tags=["public"])
def audit_heads(request: Request) -> dict:
    """Head (last sequence number and hash) of the desk's chain and of each node's chain as last reported."""
    desk = request.app.state.desk
    seq, head = desk.audit_log().head()
    with desk.sessions() as session:
        nodes = {n.id: {"seq": n.audit_seq, "hash": n.audit_head,
                        "reported_at": n.audit_reported_at.isoformat() if n.audit_reported_at else None}
                 for n in session.scalars(select(Node).order_by(Node.id))}
    return {"desk": {"seq": seq, "hash": head}, "nodes": nodes}


@api.get("/privacy", tags=["public"])
def privacy_ledgers(request: Request) -> dict:
    """Each hospital's privacy-budget ledger totals (epsilon and delta spent on its dataset, over all runs and
    projects, and its cap), as the node last reported them with a signed result; the entries are in its chain."""
    with request.app.state.desk.sessions() as session:
        nodes = {n.id: {**(n.privacy_spent or {"epsilon": 0.0, "delta": 0.0, "runs": 0}),
                        "reported_at": n.audit_reported_at.isoformat() if n.privacy_spent else None}
                 for n in session.scalars(select(Node).order_by(Node.id))}
    return {"nodes": nodes}


@api.get("/audit/desk", tags=["audit"], response_class=Response,  # errors stay JSON (ErrorBody) in the schema
         responses={200: {"description": "JSON lines", "content": {"text/plain": {"schema": {"type": "string"}}}}})
def audit_export(request: Request, _who: Annotated[Principal, Depends(Needs("auditor", "admin"))]) -> Response:
    """The desk's audit chain as JSON lines; check it with 'fedsante audit verify'."""
    path = request.app.state.desk.settings.audit_path
    return PlainTextResponse(path.read_text(encoding="utf-8") if path.exists() else "")


@api.post("/organisations", status_code=201, tags=["registry"])
def create_organisation(body: OrganisationIn, request: Request, who: Admin) -> dict:
    desk = request.app.state.desk
    with desk.sessions() as session:
        org = Organisation(name=body.name, kind=body.kind)
        session.add(org)
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(f"Organisation {body.name!r} already exists.") from None
    desk.record(who.name, "organisation.created", body.name, {"kind": body.kind})
    return {"id": org.id, "name": org.name, "kind": org.kind}


@api.get("/organisations", tags=["registry"])
def list_organisations(request: Request, _who: Anyone) -> list[dict]:
    with request.app.state.desk.sessions() as session:
        return [{"id": o.id, "name": o.name, "kind": o.kind} for o in session.scalars(select(Organisation))]


def _organisation(session, name: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        raise NotFound(f"Organisation {name!r} is not registered. Create it with 'fedsante account org'.")
    return org


@api.post("/accounts", status_code=201, tags=["accounts"])
def create_account(body: AccountIn, request: Request, who: Admin) -> dict:
    """Create an account; the token is returned once and stored only as a hash."""
    today = datetime.now(UTC).date()
    if not today <= body.end_date <= today + timedelta(days=366 * MAX_ACCOUNT_YEARS):
        raise BadRequest(f"end_date {body.end_date} must lie between today and {MAX_ACCOUNT_YEARS} years ahead.")
    desk = request.app.state.desk
    token = new_token()
    with desk.sessions() as session:
        org = _organisation(session, body.organisation)
        session.add(Account(name=body.name, organisation_id=org.id, role=body.role, end_date=body.end_date,
                            token_sha256=token_sha256(token)))
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(f"Account {body.name!r} already exists.") from None
    desk.record(who.name, "account.created", body.name, {"role": body.role, "organisation": body.organisation,
                                                          "end_date": body.end_date.isoformat()})
    return {"name": body.name, "role": body.role, "organisation": body.organisation,
            "end_date": body.end_date.isoformat(), "token": token}


def _account_view(account: Account, organisation: str) -> dict:
    return {"name": account.name, "role": account.role, "organisation": organisation,
            "end_date": account.end_date.isoformat(),
            "disabled_at": account.disabled_at.isoformat() if account.disabled_at else None}


@api.get("/accounts", tags=["accounts"])
def list_accounts(request: Request, _who: Annotated[Principal, Depends(Needs("admin", "auditor"))]) -> list[dict]:
    with request.app.state.desk.sessions() as session:
        rows = session.execute(select(Account, Organisation.name).join(Organisation).order_by(Account.id))
        return [_account_view(a, org) for a, org in rows]


@api.get("/accounts/me", tags=["accounts"])
def whoami(who: Anyone) -> dict:
    return {"name": who.name, "role": who.role, "organisation": who.organisation}


@api.post("/accounts/{name}/disable", tags=["accounts"])
def disable_account(name: str, request: Request, who: Admin) -> dict:
    desk = request.app.state.desk
    with desk.sessions() as session:
        account = session.scalar(select(Account).where(Account.name == name))
        if account is None:
            raise NotFound(f"Account {name!r} does not exist.")
        if account.role == "admin" and account.disabled_at is None and _active_admins(session) <= 1:
            raise Conflict(f"Account {name!r} is the last active admin: create or enable another admin first. "
                           "Nobody could administer the desk otherwise.")
        account.disabled_at = utcnow()
        session.commit()
    desk.record(who.name, "account.disabled", name)
    return {"name": name, "disabled": True}


def _raw_key(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return b""


def _active_admins(session) -> int:
    today = datetime.now(UTC).date()
    return len(session.scalars(select(Account.id).where(Account.role == "admin", Account.disabled_at.is_(None),
                                                        Account.end_date >= today)).all())


@api.post("/nodes", status_code=201, tags=["registry"])
def register_node(body: NodeIn, request: Request,
                  who: Annotated[Principal, Depends(Needs("admin", "operator"))]) -> dict:
    """Register a hospital node and the public key it signs with (operators: for their own organisation)."""
    parse_public_key(body.public_key)
    desk = request.app.state.desk
    with desk.sessions() as session:
        org = _organisation(session, body.organisation)
        if who.role == "operator" and org.id != who.organisation_id:
            raise Forbidden(f"Operator {who.name!r} can register nodes of {who.organisation!r} only.")
        if session.get(Node, body.node_id) is not None:
            raise Conflict(f"Node {body.node_id!r} is already registered.")
        holder = next((node_id for node_id, key in session.execute(select(Node.id, Node.public_key))
                       if _raw_key(key) == _raw_key(body.public_key)), None)  # any base64 spelling of the key
        if holder is not None:
            raise Conflict(f"This public key is already registered for node {holder!r}; each node signs with "
                           "its own key ('fedsante node init' creates one).")
        session.add(Node(id=body.node_id, organisation_id=org.id, public_key=body.public_key,
                         hospital_name=body.hospital_name, territory=body.territory))
        session.commit()
    desk.record(who.name, "node.registered", body.node_id, {"organisation": body.organisation,
                                                             "public_key": body.public_key})
    return {"node_id": body.node_id, "organisation": body.organisation}


@api.get("/nodes", tags=["registry"])
def list_nodes(request: Request, _who: Anyone) -> list[dict]:
    desk = request.app.state.desk
    with desk.sessions() as session:
        return [
            {"node_id": n.id, "hospital_name": n.hospital_name, "territory": n.territory,
             "connected": desk.broker.connected(n.id), "audit_seq": n.audit_seq, "audit_head": n.audit_head}
            for n in session.scalars(select(Node).order_by(Node.id))
        ]


@api.get("/algorithms", tags=["runs"])
def list_algorithms(_who: Anyone) -> list[dict]:
    """The catalogue this desk's fedsante version offers, with code hashes."""
    return [{**a.ref().model_dump(), "description": a.description} for a in catalogue().values()]


@api.post("/runs", status_code=201, response_model=RunOut, tags=["runs"])
async def start_run(body: RunIn, request: Request,
                    who: Annotated[Principal, Depends(Needs("holder"))]) -> RunOut:
    """Start a run of an approved project; it proceeds in the background (poll GET /api/v1/runs/{id})."""
    run = request.app.state.desk.runs.start(body.project, body.nodes, body.params, who)
    return RunOut.model_validate(visible(run, who))


@api.get("/runs", response_model=list[RunOut], tags=["runs"])
def list_runs(request: Request, who: Anyone) -> list[RunOut]:
    """Every run; outputs of completed runs not yet released are withheld from holders and operators."""
    with request.app.state.desk.sessions() as session:
        return [RunOut.model_validate(visible(r, who, _applicant(session, r)))
                for r in session.scalars(select(Run).order_by(Run.created_at))]


def _applicant(session, run: Run) -> int | None:
    """The organisation of the run's project (whose reviewers never see its held outputs)."""
    project = session.get(Project, run.project_id)
    return project.organisation_id if project else None


def _run(session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"Run {run_id!r} does not exist.")
    return run


@api.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
def get_run(run_id: str, request: Request, who: Anyone) -> RunOut:
    with request.app.state.desk.sessions() as session:
        run = _run(session, run_id)
        return RunOut.model_validate(visible(run, who, _applicant(session, run)))


@api.get("/runs/{run_id}/checks", tags=["release"])
def run_checks(run_id: str, request: Request, _who: Anyone) -> dict:
    """The automatic checks a reviewer sees before releasing the run's outputs, and who released them."""
    desk = request.app.state.desk
    with desk.sessions() as session:
        run = _run(session, run_id)
        approval = session.get(Approval, run.approval_id) if run.approval_id else None
        return {"run_id": run.id, "checks": automatic_checks(run, approval.document["k_min"] if approval else 11),
                "released_by": releasers_of(session, run), "needed": desk.settings.release_reviewers,
                "released_at": run.released_at.isoformat() if run.released_at else None}


@api.post("/runs/{run_id}/release", tags=["release"])
def release_run(run_id: str, body: ReleaseIn, request: Request,
                who: Annotated[Principal, Depends(Needs("reviewer"))]) -> dict:
    """Release a completed run's outputs (needs ``release_reviewers`` reviewers and passing checks)."""
    desk = request.app.state.desk
    with desk.sessions() as session:
        outcome = release(desk, session, _run(session, run_id), who, body.comment)
        session.commit()
        return outcome


@api.get("/runs/{run_id}/tasks", tags=["runs"])
def list_run_tasks(run_id: str, request: Request, _who: Anyone) -> list[dict]:
    """Every task of a run: node, round, kind, outcome, result hash and node signature."""
    with request.app.state.desk.sessions() as session:
        rows = session.scalars(select(TaskRecord).where(TaskRecord.run_id == run_id).order_by(TaskRecord.completed_at))
        return [
            {"task_id": t.id, "node_id": t.node_id, "round": t.round, "kind": t.kind, "ok": t.ok,
             "error": t.error, "rejected": t.rejected, "result_sha256": t.result_sha256,
             "signature": t.signature, "completed_at": t.completed_at.isoformat()}
            for t in rows
        ]


router.include_router(api)
