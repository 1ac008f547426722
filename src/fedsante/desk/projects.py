"""The life of a project at the desk: drafts, submission, charter review, signed approval, release.

Every transition goes through :func:`move`, which checks it against :data:`TRANSITIONS` and records
who, when and why (in the database and in the desk's audit chain).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fedsante.desk.access import Principal
from fedsante.desk.charter import failed, run_checks
from fedsante.desk.db import Account, Approval, Organisation, Project, ProjectEvent, Review, utcnow
from fedsante.desk.registry import ProjectSpec, algorithm_params
from fedsante.common.errors import Conflict, DataError, Forbidden, NotFound
from fedsante.federation.approval import ApprovalDocument, CharterRef, DatasetScope, SignedApproval, iso
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.common.keys import canonical_json, sign

STATUSES = ("draft", "submitted", "in_review", "changes_requested", "approved", "rejected",
            "running", "completed", "results_released", "archived")
TRANSITIONS: dict[str, set[str]] = {
    "draft": {"submitted", "archived"},
    "submitted": {"in_review", "changes_requested", "approved", "rejected"},
    "in_review": {"changes_requested", "approved", "rejected"},
    "changes_requested": {"submitted", "archived"},
    "approved": {"running", "archived"},
    "running": {"completed"},
    "completed": {"results_released", "archived"},
    "results_released": {"archived"},
    "rejected": {"archived"},
    "archived": set(),
}
DECISIONS = ("comment", "approve", "changes_requested", "reject")


def get_project(session: Session, reference: str) -> Project:
    project = session.scalar(select(Project).where(Project.reference == reference))
    if project is None:
        raise NotFound(f"Project {reference!r} does not exist. List projects with 'fedsante project list'.")
    return project


def own(project: Project, principal: Principal) -> None:
    """Project holders act only on their own organisation's projects."""
    if project.organisation_id != principal.organisation_id:
        raise Forbidden(f"Project {project.reference} belongs to another organisation than {principal.organisation!r}.")


def move(desk, session: Session, project: Project, to: str, actor: str, reason: str = "") -> None:
    """Change a project's status if the lifecycle allows it, recording who, when and why."""
    if to not in TRANSITIONS[project.status]:
        allowed = ", ".join(sorted(TRANSITIONS[project.status])) or "nothing (final)"
        raise Conflict(f"Project {project.reference} is {project.status}; it cannot become {to} "
                       f"(from {project.status} it can become: {allowed}).")
    session.add(ProjectEvent(project_id=project.id, actor=actor, from_status=project.status, to_status=to,
                             reason=reason))
    desk.record(actor, f"project.{to}", project.reference,
                {"from": project.status, "version": project.version, "reason": reason})
    project.status, project.updated_at = to, utcnow()


def create(desk, session: Session, spec: ProjectSpec, principal: Principal) -> Project:
    project = Project(reference=f"pending-{uuid.uuid4().hex}", organisation_id=principal.organisation_id,
                      owner_id=principal.account_id, spec=spec.model_dump(mode="json"))
    session.add(project)
    session.flush()  # the database numbers the project; the reference follows from it
    project.reference = f"RAIH-{datetime.now(UTC).year}-{project.id:04d}"
    session.add(ProjectEvent(project_id=project.id, actor=principal.name, from_status=None, to_status="draft",
                             reason="created"))
    desk.record(principal.name, "project.draft", project.reference, {"title": spec.title})
    return project


def update(desk, session: Session, project: Project, spec: ProjectSpec, principal: Principal) -> None:
    if project.status not in ("draft", "changes_requested"):
        raise Conflict(f"Project {project.reference} is {project.status}; only a draft or a project with "
                       "changes requested can be edited.")
    if project.status == "changes_requested":
        project.version += 1
    project.spec, project.updated_at = spec.model_dump(mode="json"), utcnow()
    desk.record(principal.name, "project.edited", project.reference, {"version": project.version})


def submit(desk, session: Session, project: Project, principal: Principal, reason: str = "") -> None:
    problems = failed(run_checks(ProjectSpec.model_validate(project.spec), desk.charter))
    if problems:
        errors = [f"{c.id}: {c.message_en}" for c in problems]
        raise DataError(f"Project {project.reference} does not pass the charter's automatic checks: "
                        + "; ".join(errors), errors=errors)
    move(desk, session, project, "submitted", principal.name, reason or "submitted for review")


def approving_reviewers(session: Session, project: Project) -> list[Account]:
    """Reviewers whose latest decision on the current version is 'approve'."""
    latest: dict[int, Review] = {}
    reviews = session.scalars(select(Review).where(Review.project_id == project.id,
                                                   Review.project_version == project.version).order_by(Review.id))
    for review in reviews:
        if review.decision != "comment":
            latest[review.reviewer_id] = review
    return [session.get(Account, r.reviewer_id) for r in latest.values() if r.decision == "approve"]


def review(desk, session: Session, project: Project, principal: Principal, decision: str, comment: str,
           answers: dict[str, str], public_reason: str = "") -> Review:
    """Record a reviewer's decision; approve, reject or request changes once the rules are met.

    ``comment`` is for the applicant and the desk only; ``public_reason``, if any, is what the portal
    publishes with the decision (and the reason of the status change it causes).
    """
    if project.organisation_id == principal.organisation_id:
        raise Forbidden(f"Reviewer {principal.name!r} belongs to {principal.organisation!r}, the applicant's "
                        "organisation: no self-review (the charter needs reviewers from other organisations).")
    if project.status not in ("submitted", "in_review"):
        raise Conflict(f"Project {project.reference} is {project.status}; reviews are taken while it is "
                       "submitted or in review.")
    unknown = sorted(set(answers) - {q.id for p in desk.charter.principles for q in p.questions})
    if unknown:
        raise DataError(f"Unknown charter question(s): {', '.join(unknown)}.")
    if decision == "approve":
        problems = failed(run_checks(ProjectSpec.model_validate(project.spec), desk.charter))
        if problems:
            raise Conflict("Cannot approve: automatic checks fail: " + "; ".join(c.id for c in problems))
    if not comment.strip() and decision != "approve":
        raise DataError(f"A '{decision}' review needs a comment explaining it to the applicant.")
    record = Review(project_id=project.id, project_version=project.version, reviewer_id=principal.account_id,
                    decision=decision, comment=comment, public_reason=public_reason.strip(), answers=answers)
    session.add(record)
    session.flush()
    desk.record(principal.name, f"review.{decision}", project.reference,
                {"version": project.version, "comment": comment})
    if project.status == "submitted":
        move(desk, session, project, "in_review", principal.name, "review started")
    if decision in ("reject", "changes_requested"):
        move(desk, session, project, "rejected" if decision == "reject" else "changes_requested",
             principal.name, public_reason.strip())  # the history is public: never the private comment
    elif decision == "approve":
        approvers = approving_reviewers(session, project)
        if len(approvers) >= desk.charter.policy.min_reviewers:
            approve(desk, session, project, approvers)
    return record


def approve(desk, session: Session, project: Project, approvers: list[Account]) -> Approval:
    """Sign the approval document with the desk's current key and move the project to approved."""
    spec = ProjectSpec.model_validate(project.spec)
    info, key = desk.keyring.current()
    now = datetime.now(UTC)
    expires = now + timedelta(days=desk.charter.policy.approval_validity_days)
    if spec.retention_end_date is not None:
        expires = min(expires, datetime.combine(spec.retention_end_date, time.max, tzinfo=UTC))
    charter = desk.charter
    document = ApprovalDocument(
        approval_id=f"{project.reference}-v{project.version}", project_reference=project.reference,
        project_version=project.version, title=spec.title, purpose_category=spec.purpose_category,
        datasets=[DatasetScope(node_id=d.node_id, dataset=d.dataset) for d in spec.datasets],
        algorithm=get_algorithm(spec.algorithm).ref(), study=spec.study,
        study_sha256=spec.study.sha256() if spec.study else "",
        parameters=algorithm_params(spec).model_dump(exclude_none=True),
        parameter_bounds=spec.parameter_bounds, epsilon=spec.epsilon, delta=spec.delta, k_min=spec.k_min,
        charter=CharterRef(id=charter.id, version=charter.version, sha256=charter.digest),
        reviewers=sorted(a.name for a in approvers), issued_at=iso(now), expires_at=iso(expires),
        desk_key_id=info.key_id,
    )
    body = document.model_dump(mode="json")
    signed = SignedApproval(document=document, signature=sign(key, canonical_json(body)))
    approval = Approval(id=document.approval_id, project_id=project.id, document=body,
                        signature=signed.signature, sha256=signed.sha256(), expires_at=expires)
    session.add(approval)
    move(desk, session, project, "approved", "desk",
         f"approved by {', '.join(document.reviewers)}; approval {approval.id} signed with key {info.key_id}")
    desk.record("desk", "approval.signed", project.reference,
                {"approval_id": approval.id, "sha256": approval.sha256, "key_id": info.key_id,
                 "expires_at": document.expires_at})
    return approval


def current_approval(session: Session, project: Project) -> Approval | None:
    return session.scalar(select(Approval).where(Approval.project_id == project.id).order_by(Approval.created_at.desc()))


def signed_approval(approval: Approval) -> SignedApproval:
    return SignedApproval(document=ApprovalDocument.model_validate(approval.document), signature=approval.signature)


INSIDE_ROLES = ("reviewer", "auditor", "admin")
"""Roles that read every project's drafts and review threads (auditors read only: see docs/governance.md)."""


def sees_inside(project: Project, principal: Principal) -> bool:
    """Whether ``principal`` may read the project's draft and review thread (the applicant's organisation,
    desk reviewers, auditors and admins); others see only what the public portal shows."""
    return project.organisation_id == principal.organisation_id or principal.role in INSIDE_ROLES


def readable(session: Session, reference: str, principal: Principal) -> Project:
    """The project if ``principal`` may read it at all: a draft of another organisation does not exist for them."""
    project = get_project(session, reference)
    if project.status == "draft" and not sees_inside(project, principal):
        raise NotFound(f"Project {reference!r} does not exist. List projects with 'fedsante project list'.")
    return project


def view(session: Session, project: Project, principal: Principal | None = None) -> dict:
    """The project as the API shows it; without the owner's account name to those outside it."""
    data = _view(session, project)
    if principal is not None and not sees_inside(project, principal):
        data.pop("owner")
    return data


def _view(session: Session, project: Project) -> dict:
    organisation = session.get(Organisation, project.organisation_id)
    owner = session.get(Account, project.owner_id)
    approval = current_approval(session, project)
    return {"reference": project.reference, "title": project.spec.get("title", ""), "status": project.status,
            "version": project.version, "organisation": organisation.name, "owner": owner.name,
            "approval_id": approval.id if approval else None, "spec": project.spec,
            "created_at": project.created_at.isoformat(), "updated_at": project.updated_at.isoformat()}
