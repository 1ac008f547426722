"""The output release gate: a run's outputs stay at the desk until reviewers release them.

Reviewers see the automatic checks first (every site's statistics rest on at least k_min patients,
the model has few parameters for the patients it was trained on, only aggregate arrays are held);
``release_reviewers`` of them (two by default: the outputs derive from patient-level data), from
organisations other than the applicant's, must release the run. Until then the project holder sees
the run's progress but not its model or metrics.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fedsante.common.errors import Conflict, Forbidden
from fedsante.desk.access import Principal
from fedsante.desk.db import Account, Approval, Project, Run, RunRelease, utcnow
from fedsante.federation.result import RunResult
from fedsante.privacy.disclosure import DisclosureError, DisclosurePolicy, check_model_size

SEES_HELD_OUTPUTS = ("reviewer", "auditor", "admin")
"""Roles that may see held outputs; a reviewer only if outside the applicant's organisation (see
:func:`sees_held_outputs`): the reviewers who may release them, auditors and admins."""


def sees_held_outputs(who, applicant_organisation_id: int | None) -> bool:
    """Whether ``who`` may see a run's outputs before their release. A reviewer of the applicant's
    organisation (or of an unknown applicant) may not: they could pass the outputs on before release."""
    if who.role not in SEES_HELD_OUTPUTS:
        return False
    if who.role == "reviewer":
        return applicant_organisation_id is not None and who.organisation_id != applicant_organisation_id
    return True


def automatic_checks(run: Run, k_min: int) -> list[dict]:
    """What a reviewer checks before releasing: each with an id, ok, and a message naming the numbers."""
    if run.status != "completed" or not run.result:
        return [{"id": "completed", "ok": False, "message": f"Run {run.id} is {run.status}; only a completed run "
                                                            "can be released."}]
    result = RunResult.model_validate(run.result)
    policy = DisclosurePolicy(k_min=max(k_min, 11))
    checks = []
    counts = {node: result.metric(node, "n") or 0 for node in result.node_metrics}
    small = {node: n for node, n in counts.items() if n < policy.k_min}
    checks.append({"id": "k_min", "ok": not small, "message": (
        f"every site's evaluation rests on at least k_min = {k_min} patients" if not small else
        "sites under k_min = " + str(k_min) + ": " + ", ".join(small))})  # no count: it could be published
    n_params = sum(len(v) for v in result.model.values())
    n_train = int(sum(result.train_n.values()))
    try:
        check_model_size(n_params, n_train, policy)
        checks.append({"id": "model_size", "ok": True, "message": (
            f"{n_params} model parameters for {n_train} training patients, within the limit of "
            f"{policy.max_params_ratio:g} per patient")})
    except DisclosureError as exc:
        checks.append({"id": "model_size", "ok": False, "message": exc.message})
    arrays = [*result.model.values(), *([result.scaler.mean, result.scaler.scale] if result.scaler else [])]
    longest = max((len(v) for v in arrays), default=0)
    aggregate = longest <= len(result.features) + 1
    checks.append({"id": "aggregates_only", "ok": aggregate, "message": (
        f"the outputs hold only model and standardisation arrays (longest: {longest} values), no per-patient value"
        if aggregate else f"an output array has {longest} values: it could hold per-patient values")})
    privacy = run.privacy or {}
    within = bool(privacy.get("epsilon")) and privacy["epsilon"] <= privacy["approved_epsilon"] * (1 + 1e-9)
    checks.append({"id": "privacy_budget", "ok": within, "message": (
        f"each hospital spent epsilon = {privacy['epsilon']:.3g} at delta = {privacy['delta']:g} "
        f"({privacy['mechanism']}-level DP), within the approved epsilon = {privacy['approved_epsilon']:g}"
        if within else "the run was not differentially private within its approval (privacy 'none')")})
    return checks


def release(desk, session: Session, run: Run, who: Principal, comment: str) -> dict:
    """Record one reviewer's release; the run is released when enough reviewers did and checks pass."""
    project = session.get(Project, run.project_id)
    if project.organisation_id == who.organisation_id:
        raise Forbidden(f"Reviewer {who.name!r} belongs to the applicant's organisation {who.organisation!r}: "
                        "outputs are released by reviewers from other organisations.")
    approval = session.get(Approval, run.approval_id) if run.approval_id else None
    checks = automatic_checks(run, approval.document["k_min"] if approval else 11)
    failing = [c for c in checks if not c["ok"]]
    if failing:
        raise Conflict(f"Run {run.id} cannot be released: " + "; ".join(f"{c['id']}: {c['message']}" for c in failing))
    if run.released_at is not None:
        raise Conflict(f"Run {run.id} was already released on {run.released_at:%Y-%m-%d %H:%M}.")
    done = session.scalar(select(RunRelease).where(RunRelease.run_id == run.id, RunRelease.reviewer_id == who.account_id))
    if done is not None:
        raise Conflict(f"Reviewer {who.name!r} already released run {run.id}; another reviewer must also do so.")
    session.add(RunRelease(run_id=run.id, reviewer_id=who.account_id, comment=comment))
    session.flush()
    releasers = releasers_of(session, run)
    desk.record(who.name, "run.release_signed", run.id, {"project": project.reference, "comment": comment})
    if len(releasers) >= desk.settings.release_reviewers:
        run.released_at = utcnow()
        desk.record("desk", "run.released", run.id, {"project": project.reference, "reviewers": releasers})
    return {"run_id": run.id, "released": run.released_at is not None, "released_by": releasers,
            "needed": desk.settings.release_reviewers}


def releasers_of(session: Session, run: Run) -> list[str]:
    rows = session.execute(select(Account.name).join(RunRelease, RunRelease.reviewer_id == Account.id)
                           .where(RunRelease.run_id == run.id).order_by(RunRelease.id))
    return [name for (name,) in rows]


def visible(run: Run, who: Principal, applicant_organisation_id: int | None = None) -> dict:
    """The run as ``who`` may see it: outputs withheld until released from all but external reviewers,
    auditors and admins (``applicant_organisation_id``: the organisation of the run's project)."""
    data = {c: getattr(run, c) for c in ("id", "project_id", "approval_id", "started_by", "status", "algorithm_id",
                                         "algorithm_version", "code_hash", "params", "nodes", "rounds", "current_round",
                                         "error", "result", "privacy", "created_at", "finished_at",
                                         "released_at")}
    data["held"] = run.status == "completed" and run.released_at is None
    # which hospitals were left out, and why, is governance information without counts: never held
    result = RunResult.model_validate(run.result) if run.result else None
    data["left_out"] = dict(result.left_out) if result else {}
    data["notes"] = {node: list(notes) for node, notes in result.notes.items()} if result else {}
    if data["held"] and not sees_held_outputs(who, applicant_organisation_id):
        data["result"] = None
    return data

