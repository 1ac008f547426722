"""Desk API for administrators: organisations, nodes, projects, runs."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from fedsante import __version__
from fedsante.desk.db import Node, Organisation, Project, Run, TaskRecord
from fedsante.desk.schemas import NodeIn, OrganisationIn, ProjectIn, RunIn, RunOut
from fedsante.errors import BadRequest, Conflict, NotFound, field_problems
from fedsante.federation.catalogue import CATALOGUE
from fedsante.federation.keys import parse_public_key
from fedsante.federation.params import LogRegParams


def _admin(request: Request) -> None:
    request.app.state.desk.check_admin(request)


router = APIRouter()
admin = APIRouter(prefix="/api/v1", dependencies=[Depends(_admin)])


@router.get("/health", tags=["service"])
def health(request: Request) -> dict:
    """Liveness and version."""
    return {"ok": True, "service": "fedsante-desk", "version": __version__}


@admin.post("/organisations", status_code=201, tags=["registry"])
def create_organisation(body: OrganisationIn, request: Request) -> dict:
    with request.app.state.desk.sessions() as session:
        org = Organisation(name=body.name, kind=body.kind)
        session.add(org)
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(f"Organisation {body.name!r} already exists.") from None
        return {"id": org.id, "name": org.name, "kind": org.kind}


@admin.get("/organisations", tags=["registry"])
def list_organisations(request: Request) -> list[dict]:
    with request.app.state.desk.sessions() as session:
        return [{"id": o.id, "name": o.name, "kind": o.kind} for o in session.scalars(select(Organisation))]


def _organisation(session, name: str) -> Organisation:
    org = session.scalar(select(Organisation).where(Organisation.name == name))
    if org is None:
        raise NotFound(f"Organisation {name!r} is not registered. Create it with POST /api/v1/organisations.")
    return org


@admin.post("/nodes", status_code=201, tags=["registry"])
def register_node(body: NodeIn, request: Request) -> dict:
    """Register a hospital node and the public key it signs with."""
    parse_public_key(body.public_key)
    with request.app.state.desk.sessions() as session:
        org = _organisation(session, body.organisation)
        if session.get(Node, body.node_id) is not None:
            raise Conflict(f"Node {body.node_id!r} is already registered.")
        session.add(Node(id=body.node_id, organisation_id=org.id, public_key=body.public_key,
                         hospital_name=body.hospital_name, territory=body.territory))
        session.commit()
    return {"node_id": body.node_id, "organisation": body.organisation}


@admin.get("/nodes", tags=["registry"])
def list_nodes(request: Request) -> list[dict]:
    desk = request.app.state.desk
    with desk.sessions() as session:
        return [
            {"node_id": n.id, "hospital_name": n.hospital_name, "territory": n.territory,
             "connected": desk.broker.connected(n.id)}
            for n in session.scalars(select(Node).order_by(Node.id))
        ]


@admin.post("/projects", status_code=201, tags=["projects"])
def create_project(body: ProjectIn, request: Request) -> dict:
    with request.app.state.desk.sessions() as session:
        org = _organisation(session, body.organisation)
        project = Project(title=body.title, organisation_id=org.id)
        session.add(project)
        session.commit()
        return {"id": project.id, "title": project.title}


@admin.get("/projects", tags=["projects"])
def list_projects(request: Request) -> list[dict]:
    with request.app.state.desk.sessions() as session:
        return [{"id": p.id, "title": p.title} for p in session.scalars(select(Project))]


@admin.get("/algorithms", tags=["runs"])
def list_algorithms() -> list[dict]:
    """The catalogue this desk's fedsante version offers, with code hashes."""
    return [{**a.ref().model_dump(), "description": a.description} for a in CATALOGUE.values()]


@admin.post("/runs", status_code=201, response_model=RunOut, tags=["runs"])
async def start_run(body: RunIn, request: Request) -> RunOut:
    """Start a federated run; it proceeds in the background (poll GET /api/v1/runs/{id})."""
    try:
        params = LogRegParams.model_validate(body.params)
    except ValidationError as exc:
        errors = field_problems(exc, prefix="params.")
        raise BadRequest("Invalid run parameters: " + "; ".join(errors), errors=errors) from None
    run = request.app.state.desk.runs.start(body.project_id, body.nodes, body.algorithm, params)
    return RunOut.model_validate(run)


@admin.get("/runs", response_model=list[RunOut], tags=["runs"])
def list_runs(request: Request) -> list[RunOut]:
    with request.app.state.desk.sessions() as session:
        return [RunOut.model_validate(r) for r in session.scalars(select(Run).order_by(Run.created_at))]


@admin.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
def get_run(run_id: str, request: Request) -> RunOut:
    with request.app.state.desk.sessions() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"Run {run_id!r} does not exist.")
        return RunOut.model_validate(run)


@admin.get("/runs/{run_id}/tasks", tags=["runs"])
def list_run_tasks(run_id: str, request: Request) -> list[dict]:
    """Every task of a run: node, round, kind, outcome, result hash and node signature."""
    with request.app.state.desk.sessions() as session:
        rows = session.scalars(select(TaskRecord).where(TaskRecord.run_id == run_id).order_by(TaskRecord.completed_at))
        return [
            {"task_id": t.id, "node_id": t.node_id, "round": t.round, "kind": t.kind, "ok": t.ok,
             "error": t.error, "rejected": t.rejected, "result_sha256": t.result_sha256,
             "signature": t.signature, "completed_at": t.completed_at.isoformat()}
            for t in rows
        ]


router.include_router(admin)
