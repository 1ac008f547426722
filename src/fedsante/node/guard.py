"""What a node checks before it computes anything: pure functions returning the reason to refuse.

Before every task: the desk's signature on the task, the approval's signature by a trusted desk key,
that the approval is for this task's project, its expiry, this hospital's acceptance, the algorithm
and its code hash, the dataset scope, the parameter bounds, the hospital's own limits, and what the run
spends of the approval's privacy budget and of the dataset's remaining budget (:func:`privacy_problem`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from fedsante.common.errors import field_problems
from fedsante.common.keys import canonical_json, verify
from fedsante.federation.approval import AlgorithmRef, SignedApproval, bounds_problem, signature_problem
from fedsante.federation.messages import Task
from fedsante.algorithms.base import AlgorithmParams
from fedsante.node.ledger import planned
from fedsante.node.policy import NodePolicy


def algorithm_problem(wanted: AlgorithmRef, installed: dict[str, AlgorithmRef]) -> str | None:
    """Why the node's installed code cannot run ``wanted``, or None."""
    here = installed.get(wanted.id)
    if here is None:
        return f"algorithm {wanted.id!r} is not installed at this node (installed: {', '.join(sorted(installed))})"
    if wanted.version != here.version:
        return f"algorithm {wanted.id!r} version {wanted.version} differs from the installed {here.version}"
    if wanted.code_hash != here.code_hash:
        return (f"algorithm {wanted.id!r} code hash {wanted.code_hash[:12]}... differs from the installed "
                f"code's {here.code_hash[:12]}... (the approved code is not what this hospital installed)")
    return None


def approval_problems(signed: SignedApproval, *, node_id: str, dataset: str, policy: NodePolicy,
                      installed: dict[str, AlgorithmRef], now: datetime) -> list[str]:
    """Everything that stops this node from accepting (or running under) an approval."""
    problem = signature_problem(signed, policy.trusted())
    if problem:
        return [problem]  # nothing else in an untrusted document is worth reading
    doc = signed.document
    problems = []
    if doc.expires() <= now:
        problems.append(f"approval {doc.approval_id} expired on {doc.expires_at}")
    scope = doc.scope()
    if scope.get(node_id) != dataset:
        approved = ", ".join(f"{n}/{d}" for n, d in scope.items())
        problems.append(f"dataset {dataset!r} of node {node_id} is not in the scope of approval "
                        f"{doc.approval_id} (approved: {approved})")
    problem = algorithm_problem(doc.algorithm, installed)
    if problem:
        problems.append(problem)
    if doc.k_min < policy.k_min_floor:
        problems.append(f"approval k_min {doc.k_min} is below this node's floor {policy.k_min_floor}")
    cap = policy.datasets.get(dataset)
    if cap is None:
        problems.append(f"this node's policy sets no epsilon cap for dataset {dataset!r}; add "
                        f"[datasets.{dataset}] epsilon_cap = ... with 'fedsante node policy set-cap'")
    elif doc.epsilon is None or doc.epsilon > cap.epsilon_cap:
        problems.append(f"approval epsilon {doc.epsilon} exceeds this node's cap {cap.epsilon_cap:g} "
                        f"for dataset {dataset!r}")
    return problems


def task_problem(task: Task, *, node_id: str, dataset: str, policy: NodePolicy, acceptances: dict[str, dict],
                 installed: dict[str, AlgorithmRef], now: datetime, derived: tuple[str, ...] = ()) -> str | None:
    """The first reason to refuse ``task``, or None when every check passes."""
    trusted = policy.trusted()
    if task.approval is None:
        return "the task carries no approval: nothing runs at this hospital without a signed approval"
    desk_key = trusted.get(task.desk_key_id)
    if desk_key is None:
        return (f"the task is signed with desk key {task.desk_key_id or '(none)'}, which this node does not "
                "trust; add it with 'fedsante node policy trust'")
    if not verify(desk_key, canonical_json(task.signed_content()), task.desk_signature):
        return "the task's desk signature is invalid: it was forged or altered in transit"
    if task.node_id != node_id:
        return (f"the task is addressed to node {task.node_id!r}, not to this node ({node_id}): a task meant for "
                "another hospital is never run here")
    doc = task.approval.document
    if doc.project_reference != task.project:
        return (f"approval {doc.approval_id} is for project {doc.project_reference}, not for project "
                f"{task.project or '(none)'} of this task (an approval cannot be replayed for another project)")
    problems = approval_problems(task.approval, node_id=node_id, dataset=dataset, policy=policy,
                                 installed=installed, now=now)
    if problems:
        return "; ".join(problems)
    accepted = acceptances.get(doc.approval_id)
    if accepted is None:
        return (f"project {doc.project_reference} (approval {doc.approval_id}) has not been accepted at this "
                f"node; the operator accepts it with 'fedsante node accept {doc.project_reference}'")
    if accepted["decision"] != "accepted":
        return f"this hospital declined approval {doc.approval_id} on {accepted['decided_at']}: {accepted['reason']}"
    if accepted["sha256"] != task.approval.sha256():
        return f"approval {doc.approval_id} differs from the document this hospital accepted"
    if doc.study is None:
        return f"approval {doc.approval_id} declares no study schema: this node cannot know what to compute on"
    if doc.study_sha256 != doc.study.sha256() or task.study_sha256 != doc.study_sha256:
        return (f"the task's study schema {task.study_sha256[:12] or '(none)'}... differs from the schema approval "
                f"{doc.approval_id} signed ({doc.study.sha256()[:12]}...)")
    if task.algorithm != doc.algorithm:
        return (f"the task asks for {task.algorithm.id} code hash {task.algorithm.code_hash[:12]}..., approval "
                f"{doc.approval_id} allows {doc.algorithm.code_hash[:12]}...")
    return bounds_problem(doc, dict(task.params), derived)


def privacy_problem(task: Task, params_model: type[AlgorithmParams], *, dataset: str, policy: NodePolicy,
                    spent: float, made: dict[str, int] | None = None) -> str | None:
    """Why the run's privacy spending must not go on here: recomputed by this node, never taken from the desk.

    ``spent`` is the epsilon already spent on ``dataset`` by other runs and ``made`` the releases of each
    task kind this run has already made here (the node's ledger): a release beyond the run's plan is
    refused, so a desk cannot spend more by sending a task twice.
    """
    try:
        params = params_model.model_validate(task.params)
    except ValidationError as exc:
        return f"invalid task parameters: {'; '.join(field_problems(exc))}"
    doc = task.approval.document
    if not params.dp:
        if policy.require_differential_privacy:
            return ("the task asks for exact outputs (privacy 'none'); this node sends only differentially private "
                    "ones (policy require_differential_privacy = true)")
        return None
    if not params.calibrated:
        return "the task asks for differential privacy without its noise multipliers"
    if doc.epsilon is None or not doc.delta:
        return f"approval {doc.approval_id} fixes no privacy budget (epsilon, delta > 0)"
    plan = params.privacy_plan()
    run = plan.epsilon(doc.delta)
    if run > doc.epsilon * (1 + 1e-9):
        return (f"the run would spend epsilon={run:.4g} at delta={doc.delta:g} here ({plan.describe()}), more than "
                f"its approval's epsilon={doc.epsilon:g}")
    allowed = planned(plan).get(task.kind)
    if allowed is not None and (made or {}).get(task.kind, 0) >= allowed:
        return (f"run {task.run_id} has already made the {allowed} {task.kind!r} release(s) its privacy plan allows "
                "at this node; another would spend beyond what was approved")
    cap = policy.datasets[dataset].epsilon_cap
    if spent + run > cap * (1 + 1e-9):
        return (f"privacy budget of dataset {dataset!r} exhausted: earlier runs spent epsilon={spent:.4g} of its cap "
                f"{cap:g}, and this run needs epsilon={run:.4g} more ({spent + run:.4g} in all); the hospital's "
                "operator decides whether to raise the cap ('fedsante node policy set-cap')")
    return None
