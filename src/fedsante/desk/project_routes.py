"""Desk API for projects: drafts, submission, charter checks, reviews, approvals, acceptances, release."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from fedsante.common.errors import Conflict, NotFound
from fedsante.desk import projects as lifecycle
from fedsante.desk.access import ANY_ROLE, Needs, Principal
from fedsante.desk.charter import run_checks
from fedsante.desk.db import Acceptance, Account, Approval, Organisation, Project, ProjectEvent, Review, Run
from fedsante.desk.registry import ProjectSpec
from fedsante.desk.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1/projects", tags=["projects"], responses=ERROR_RESPONSES)
Holder = Annotated[Principal, Depends(Needs("holder"))]
Reviewer = Annotated[Principal, Depends(Needs("reviewer"))]
Admin = Annotated[Principal, Depends(Needs("admin"))]
Anyone = Annotated[Principal, Depends(ANY_ROLE)]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["comment", "approve", "changes_requested", "reject"]
    comment: str = Field("", max_length=10_000, description="For the applicant and the desk only; never public.")
    public_reason: str = Field("", max_length=2_000, description="Optional reason published with the decision.")
    answers: dict[str, str] = Field({}, description="Answers to the charter's reviewer questions, by question id.")


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=5_000)


def _sessions(request: Request):
    return request.app.state.desk.sessions()


def _act(request: Request, reference: str, who: Principal, action, *, owner: bool = True) -> dict:
    """Load the project, check the caller may act on it, apply ``action``, commit, return the new view."""
    desk = request.app.state.desk
    with desk.sessions() as session:
        project = lifecycle.get_project(session, reference)
        if owner:
            lifecycle.own(project, who)
        action(desk, session, project)
        session.commit()
        return lifecycle.view(session, project)


@router.post("", status_code=201)
def create_project(spec: ProjectSpec, request: Request, who: Holder) -> dict:
    """Create a draft project owned by the caller's organisation."""
    desk = request.app.state.desk
    with desk.sessions() as session:
        project = lifecycle.create(desk, session, spec, who)
        session.commit()
        return lifecycle.view(session, project)


@router.get("")
def list_projects(request: Request, who: Anyone, status: str | None = None) -> list[dict]:
    """Projects: all of them for the applicant's organisation, reviewers, auditors and admins; for other
    accounts, only those the public portal shows (no draft of another organisation)."""
    with _sessions(request) as session:
        query = select(Project).order_by(Project.id)
        if status:
            query = query.where(Project.status == status)
        return [lifecycle.view(session, p, who) for p in session.scalars(query)
                if p.status != "draft" or lifecycle.sees_inside(p, who)]


@router.get("/{reference}")
def get_project(reference: str, request: Request, who: Anyone) -> dict:
    with _sessions(request) as session:
        return lifecycle.view(session, lifecycle.readable(session, reference, who), who)


@router.put("/{reference}")
def update_project(reference: str, spec: ProjectSpec, request: Request, who: Holder) -> dict:
    """Edit a draft, or a project whose reviewers asked for changes (this makes a new version)."""
    return _act(request, reference, who, lambda desk, session, project: lifecycle.update(desk, session, project,
                                                                                           spec, who))


@router.get("/{reference}/checks")
def project_checks(reference: str, request: Request, who: Anyone) -> dict:
    """The charter's automatic checks on the project's current version."""
    desk = request.app.state.desk
    with desk.sessions() as session:
        project = lifecycle.readable(session, reference, who)
        results = run_checks(ProjectSpec.model_validate(project.spec), desk.charter)
    return {"charter": {"id": desk.charter.id, "version": desk.charter.version},
            "ok": all(r.ok for r in results),
            "checks": [{"id": r.id, "principle": r.principle, "ok": r.ok, "outcome": r.outcome,
                        "message_en": r.message_en, "message_fr": r.message_fr} for r in results]}


@router.post("/{reference}/submit")
def submit_project(reference: str, body: ReasonIn, request: Request, who: Holder) -> dict:
    """Submit for review; refused with the failing checks if the charter's automatic checks fail."""
    return _act(request, reference, who, lambda desk, session, project: lifecycle.submit(desk, session, project,
                                                                                           who, body.reason))


@router.post("/{reference}/reviews", status_code=201)
def review_project(reference: str, body: ReviewIn, request: Request, who: Reviewer) -> dict:
    """A reviewer's decision. Two approvals from outside the applicant's organisation sign the approval."""
    desk = request.app.state.desk
    with desk.sessions() as session:
        project = lifecycle.get_project(session, reference)
        lifecycle.review(desk, session, project, who, body.decision, body.comment, body.answers, body.public_reason)
        session.commit()
        return lifecycle.view(session, project)


@router.get("/{reference}/reviews")
def list_reviews(reference: str, request: Request, who: Anyone) -> list[dict]:
    """The review thread (reviewer, comment, answers) for the applicant's organisation, reviewers, auditors
    and admins; to other accounts only what the portal publishes: decision, reviewer's organisation and
    public reason."""
    with _sessions(request) as session:
        project = lifecycle.readable(session, reference, who)
        rows = session.execute(select(Review, Account.name, Organisation.name)
                               .join(Account, Review.reviewer_id == Account.id)
                               .join(Organisation, Account.organisation_id == Organisation.id)
                               .where(Review.project_id == project.id).order_by(Review.id))
        if not lifecycle.sees_inside(project, who):
            return [{"version": r.project_version, "decision": r.decision, "reviewer_organisation": org,
                     "public_reason": r.public_reason, "created_at": r.created_at.isoformat()} for r, _, org in rows]
        return [{"reviewer": name, "reviewer_organisation": org, "version": r.project_version,
                 "decision": r.decision, "comment": r.comment, "public_reason": r.public_reason,
                 "answers": r.answers, "created_at": r.created_at.isoformat()} for r, name, org in rows]


@router.get("/{reference}/history")
def project_history(reference: str, request: Request, who: Anyone) -> list[dict]:
    """Every status change: who, when, from, to, why."""
    with _sessions(request) as session:
        project = lifecycle.readable(session, reference, who)
        events = session.scalars(select(ProjectEvent).where(ProjectEvent.project_id == project.id)
                                 .order_by(ProjectEvent.id))
        return [{"time": e.time.isoformat(), "actor": e.actor, "from": e.from_status, "to": e.to_status,
                 "reason": e.reason} for e in events]


@router.get("/{reference}/approval")
def project_approval(reference: str, request: Request, who: Anyone) -> dict:
    """The signed approval: ``document`` (canonical JSON is what was signed) and ``signature``."""
    with _sessions(request) as session:
        approval = lifecycle.current_approval(session, lifecycle.readable(session, reference, who))
        if approval is None:
            raise NotFound(f"Project {reference} has no approval yet.")
        return {**lifecycle.signed_approval(approval).model_dump(mode="json"), "sha256": approval.sha256}


@router.get("/{reference}/acceptances")
def project_acceptances(reference: str, request: Request, who: Anyone) -> list[dict]:
    """Each hospital's decision on the project's approval, as its node reported and signed it."""
    with _sessions(request) as session:
        project = lifecycle.readable(session, reference, who)
        rows = session.scalars(select(Acceptance).join(Approval, Acceptance.approval_id == Approval.id)
                               .where(Approval.project_id == project.id).order_by(Acceptance.id))
        return [{"approval_id": a.approval_id, "node_id": a.node_id, "decision": a.decision, "reason": a.reason,
                 "decided_at": a.decided_at.isoformat()} for a in rows]


def _transition(request: Request, reference: str, to: str, who: Principal, reason: str, *, owner: bool) -> dict:
    def move(desk, session, project) -> None:
        running = session.scalars(select(Run.id).where(Run.project_id == project.id, Run.status == "running")).all()
        if to in ("completed", "results_released") and (running or desk.runs.active(project.id)):
            raise Conflict(f"Project {reference} still has a run in progress ({', '.join(running)}); wait for it "
                           "to end.")
        held = session.scalars(select(Run.id).where(Run.project_id == project.id, Run.status == "completed",
                                                    Run.released_at.is_(None))).all()
        if to == "results_released" and held:
            raise Conflict(f"Project {reference} has runs whose outputs are not released yet: {', '.join(held)}; "
                           "release each with 'fedsante run release'.")
        lifecycle.move(desk, session, project, to, who.name, reason)

    return _act(request, reference, who, move, owner=owner)


@router.post("/{reference}/complete")
def complete_project(reference: str, body: ReasonIn, request: Request, who: Holder) -> dict:
    """The holder declares processing complete (no more runs)."""
    return _transition(request, reference, "completed", who, body.reason or "processing completed", owner=True)


@router.post("/{reference}/release")
def release_results(reference: str, body: ReasonIn, request: Request, who: Reviewer) -> dict:
    """A reviewer releases the project's results after checking them."""
    return _transition(request, reference, "results_released", who, body.reason or "results released", owner=False)


@router.post("/{reference}/archive")
def archive_project(reference: str, body: ReasonIn, request: Request, who: Admin) -> dict:
    return _transition(request, reference, "archived", who, body.reason or "archived", owner=False)
