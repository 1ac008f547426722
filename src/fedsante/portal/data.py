"""What the public portal shows, read from the desk's database (each page's JSON twin is exactly this).

Public means: every project past its draft (the registry record, the review decisions, the signed
approval), every run (status, hospitals, privacy spent) and, once two reviewers released it, the
run's trust report. Of a review, only its decision, the reviewer's organisation and the reviewer's
public reason, if any; never the reviewer's comment. Nothing here shows an account's token, a draft, a
held result or an objection.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import select

from fedsante.common.errors import NotFound
from fedsante.desk.charter import run_checks
from fedsante.desk.db import Acceptance, Account, Approval, Node, Organisation, Project, ProjectEvent, Review, Run
from fedsante.desk.catalogue import hospital_catalogue
from fedsante.desk.objections import hospital_list
from fedsante.desk.registry import ProjectSpec
from fedsante.desk.release import visible
from fedsante.federation.approval import verify_published
from fedsante.federation.result import RunResult
from fedsante.reports.trust import carbon

SCHEMA = "fedsante-portal/1"
PUBLIC_STATUSES = ("submitted", "in_review", "changes_requested", "approved", "rejected", "running", "completed",
                   "results_released", "archived")
FILTERS = ("q", "status", "purpose", "hospital", "territory")


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 with its time zone (the database returns UTC times without one)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _public(session) -> list[Project]:
    return list(session.scalars(select(Project).where(Project.status.in_(PUBLIC_STATUSES))
                                .order_by(Project.created_at.desc())))


def _summary(project: Project, organisation: str) -> dict:
    spec = project.spec
    return {"reference": project.reference, "title": spec.get("title", ""), "status": project.status,
            "purpose": spec.get("purpose_category", ""), "organisation": organisation,
            "hospitals": [d["node_id"] for d in spec.get("datasets", [])], "territories": spec.get("territories", []),
            "lay_summary_fr": spec.get("lay_summary_fr", ""), "lay_summary_en": spec.get("lay_summary_en", ""),
            "submitted_at": _iso(project.created_at), "updated_at": _iso(project.updated_at)}


def _released_runs(session) -> list[Run]:
    return list(session.scalars(select(Run).where(Run.released_at.is_not(None))))


def home(desk) -> dict:
    """Figures of the network: projects by status, hospitals, runs, privacy spent, carbon of released runs."""
    with desk.sessions() as session:
        projects = _public(session)
        runs = list(session.scalars(select(Run)))
        released = _released_runs(session)
        nodes = list(session.scalars(select(Node)))
        latest = [_summary(p, _org(session, p)) for p in projects[:5]]
    kg = _carbon_kg(released)
    return {"schema": SCHEMA, "page": "home",
            "figures": {"projects": len(projects), "projects_by_status": dict(Counter(p.status for p in projects)),
                        "hospitals": len(nodes), "runs": len(runs), "runs_released": len(released),
                        "epsilon_spent_max": max((float((n.privacy_spent or {}).get("epsilon", 0)) for n in nodes),
                                                 default=0.0),
                        "kg_co2e_released_runs": kg if any(_measured(r) for r in released) else None},
            "latest_projects": latest}


def _result(run: Run) -> RunResult | None:
    """The run's stored result, parsed (None until the run completed)."""
    return RunResult.model_validate(run.result) if run.result else None


def _measured(run: Run) -> bool:
    """Whether the hospitals measured the energy of the run."""
    result = _result(run)
    return result is not None and any(result.energy.values())


def _carbon_kg(runs: list[Run]) -> float:
    total = 0.0
    for run in runs:
        result = _result(run)
        report = carbon(result, run.finished_at) if result is not None else None
        total += report["totals"]["kg_co2e"] if report else 0.0
    return total


def _org(session, project: Project) -> str:
    organisation = session.get(Organisation, project.organisation_id)
    return organisation.name if organisation else ""


def projects(desk, filters: dict[str, str]) -> dict:
    """Projects past their draft, newest first, narrowed by ``filters`` (text search and exact fields)."""
    filters = {k: (filters.get(k) or "").strip() for k in FILTERS}
    with desk.sessions() as session:
        rows = [_summary(p, _org(session, p)) for p in _public(session)]
        territories = {n.id: n.territory for n in session.scalars(select(Node))}
    q = filters["q"].casefold()

    def keep(row: dict) -> bool:
        text = " ".join([row["reference"], row["title"], row["organisation"], row["lay_summary_fr"],
                         row["lay_summary_en"]]).casefold()
        return ((not q or q in text) and (not filters["status"] or row["status"] == filters["status"])
                and (not filters["purpose"] or row["purpose"] == filters["purpose"])
                and (not filters["hospital"] or filters["hospital"] in row["hospitals"])
                and (not filters["territory"] or filters["territory"] in row["territories"]
                     or filters["territory"] in {territories.get(h) for h in row["hospitals"]}))

    shown = [row for row in rows if keep(row)]
    return {"schema": SCHEMA, "page": "projects", "filters": filters, "count": len(shown), "projects": shown,
            "choices": {"status": sorted({r["status"] for r in rows}), "purpose": sorted({r["purpose"] for r in rows} - {""}),
                        "hospital": sorted(territories), "territory": sorted(set(territories.values()) - {""})}}


def project(desk, reference: str) -> dict:
    """One project's public record: registry fields, reviews, approval, acceptances, runs and released results."""
    with desk.sessions() as session:
        row = session.scalar(select(Project).where(Project.reference == reference))
        if row is None or row.status not in PUBLIC_STATUSES:
            raise NotFound(f"No public project has the reference {reference!r}.")
        reviews = [{"version": r.project_version, "decision": r.decision, "at": _iso(r.created_at),
                    "reviewer_organisation": _account_org(session, r.reviewer_id),
                    "public_reason": r.public_reason}  # never the reviewer's comment
                   for r in session.scalars(select(Review).where(Review.project_id == row.id).order_by(Review.id))]
        events = [{"at": _iso(e.time), "from": e.from_status, "to": e.to_status, "reason": e.reason}
                  for e in session.scalars(select(ProjectEvent).where(ProjectEvent.project_id == row.id)
                                           .order_by(ProjectEvent.id))]
        approvals = [_approval(session, a) for a in session.scalars(
            select(Approval).where(Approval.project_id == row.id).order_by(Approval.created_at))]
        runs = [_run(r) for r in session.scalars(select(Run).where(Run.project_id == row.id).order_by(Run.created_at))]
        out = {"schema": SCHEMA, "page": "project", **_summary(row, _org(session, row)), "version": row.version,
               "spec": row.spec, "charter": _charter_checks(desk, row), "reviews": reviews, "events": events,
               "approvals": approvals, "runs": runs}
    return out


def _charter_checks(desk, project: Project) -> dict:
    """The charter's automatic checks on the current version, as of its last change (what reviewers saw)."""
    checks = run_checks(ProjectSpec.model_validate(project.spec), desk.charter, today=project.updated_at.date())
    return {"id": desk.charter.id, "version": desk.charter.version,
            "checks": [{"id": c.id, "principle": c.principle, "ok": c.ok, "outcome": c.outcome,
                        "message_fr": c.message_fr, "message_en": c.message_en} for c in checks]}


def _account_org(session, account_id: int) -> str:
    account = session.get(Account, account_id)
    organisation = session.get(Organisation, account.organisation_id) if account else None
    return organisation.name if organisation else ""


def _approval(session, approval: Approval) -> dict:
    acceptances = [{"hospital": a.node_id, "decision": a.decision, "at": _iso(a.decided_at), "signature": a.signature}
                   for a in session.scalars(select(Acceptance).where(Acceptance.approval_id == approval.id))]
    return {"id": approval.id, "sha256": approval.sha256, "signature": approval.signature,
            "desk_key_id": approval.document.get("desk_key_id"),
            "document": approval.document, "expires_at": _iso(approval.expires_at),
            "created_at": _iso(approval.created_at), "acceptances": acceptances}


def _run(run: Run) -> dict:
    privacy = run.privacy or {}
    return {"id": run.id, "status": run.status, "hospitals": run.nodes, "rounds": run.rounds,
            "algorithm": f"{run.algorithm_id} {run.algorithm_version}", "code_hash": run.code_hash,
            "started_at": _iso(run.created_at), "finished_at": _iso(run.finished_at),
            "released_at": _iso(run.released_at), "epsilon": privacy.get("epsilon"), "delta": privacy.get("delta"),
            "mechanism": privacy.get("mechanism"), "error": run.error if run.status == "failed" else None,
            "kg_co2e": _carbon_kg([run]) if run.released_at and _measured(run) else None}


def released_run(desk, reference: str, run_id: str) -> tuple[dict, dict, dict]:
    """``(run, nodes, spec)`` of a released run of a public project, as the trust report needs them."""
    with desk.sessions() as session:
        row = session.scalar(select(Project).where(Project.reference == reference))
        run = session.get(Run, run_id)
        if row is None or run is None or run.project_id != row.id or run.released_at is None:
            raise NotFound(f"No released run {run_id!r} in project {reference!r}.")
        data = visible(run, SimpleNamespace(role="public"))  # released: nothing is held back
        nodes = {n.id: {"hospital_name": n.hospital_name, "territory": n.territory}
                 for n in session.scalars(select(Node))}
        return data, nodes, row.spec


def verify(desk) -> dict:
    """What anyone needs to check the desk's work: its keys, the audit heads, every approval and its check."""
    keys = [vars(k) for k in desk.keyring.keys()]
    seq, head = desk.audit_log().head()
    with desk.sessions() as session:
        heads = {n.id: {"seq": n.audit_seq, "hash": n.audit_head, "reported_at": _iso(n.audit_reported_at)}
                 for n in session.scalars(select(Node).order_by(Node.id))}
        approvals = [{"project": p.reference, **_approval(session, a)} for p in _public(session)
                     for a in session.scalars(select(Approval).where(Approval.project_id == p.id))]
    for approval in approvals:
        approval["problems"] = verify_published(approval, keys)
    return {"schema": SCHEMA, "page": "verify", "keys": keys, "audit_heads": {"desk": {"seq": seq, "hash": head},
                                                                               "nodes": heads},
            "approvals": approvals}


def rights(desk) -> dict:
    """The data protection officers named by the public projects' controllers, to write to."""
    with desk.sessions() as session:
        contacts = {(c.get("name", ""), c["dpo_contact"]) for p in _public(session)
                    for c in p.spec.get("controllers", []) if c.get("dpo_contact")}
    return {"contacts": [{"organisation": name, "dpo_contact": contact} for name, contact in sorted(contacts)]}


def hospital(desk, node_id: str) -> dict:
    """One hospital: the datasets it offers with their columns, the projects using them, objections in force
    (>= k_min)."""
    listed = {h["id"]: h for h in hospital_list(desk)}
    if node_id not in listed:
        raise NotFound(f"No hospital {node_id!r} in this network.")
    with desk.sessions() as session:
        using = [_summary(p, _org(session, p)) | {"datasets": [d["dataset"] for d in p.spec.get("datasets", [])
                                                               if d["node_id"] == node_id]}
                 for p in _public(session) if any(d["node_id"] == node_id for d in p.spec.get("datasets", []))]
    return {"schema": SCHEMA, "page": "hospital", **listed[node_id], "catalogue": hospital_catalogue(desk, node_id),
            "projects": using}
