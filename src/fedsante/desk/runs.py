"""Starting runs at the desk and recording what happens to them."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from fedsante.data.study import StudySchema
from fedsante.algorithms.base import Algorithm, AlgorithmParams
from fedsante.desk import projects as lifecycle
from fedsante.desk.access import Principal
from fedsante.desk.db import Node, Run, TaskRecord, utcnow
from fedsante.common.errors import BadRequest, Conflict, FedsanteError, Forbidden, NotFound, field_problems
from fedsante.federation.approval import ApprovalDocument, bounds_problem
from fedsante.federation.broker import Broker
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.federation.coordinator import RunOutcome, RunPlan, run_algorithm
from fedsante.common.keys import canonical_json, sha256_hex, sign, verify
from fedsante.federation.messages import Task, TaskResult
from fedsante.federation.result import AttributeLayout, EnergyRecord, FairnessLayout, RunResult
from fedsante.privacy.accountant import BudgetExceeded

log = logging.getLogger("fedsante.desk")


class RunService:
    """Starts runs of approved projects, drives each in a background task, records progress and outcome."""

    def __init__(self, desk) -> None:
        self.desk = desk
        self.sessions: sessionmaker = desk.sessions
        self.broker: Broker = desk.broker
        self.round_timeout = desk.settings.round_timeout_seconds
        self._tasks: dict[str, tuple[asyncio.Task, int]] = {}
        self._usage: dict[str, dict] = {}  # run -> energy records and bytes exchanged, per node

    def recover(self) -> list[str]:
        """At start-up: runs a previous desk process left 'running' are failed, with the reason, and audited.

        A run's state (secure-aggregation secrets in flight, the model between rounds) is not kept across a
        restart, so it cannot be resumed; the holder starts a new run (docs/reliability.md).
        """
        reason = ("The desk restarted during the run; its state between rounds is not kept, so the run cannot "
                  "resume. Start a new run.")
        with self.sessions() as session:
            stale = list(session.scalars(select(Run).where(Run.status == "running")))
            for run in stale:
                run.status, run.error, run.finished_at = "failed", reason, utcnow()
            session.commit()
            ids = [run.id for run in stale]
        for run_id in ids:
            self.desk.record("desk", "run.failed", run_id, {"error": reason})
            log.warning("run %s failed: %s", run_id, reason)
        return ids

    def drives(self, run_id: str) -> bool:
        """Whether this service is driving run ``run_id`` now (its results are recorded in ``_on_event``)."""
        return run_id in self._tasks

    def active(self, project_id: int) -> bool:
        return any(pid == project_id for _, pid in self._tasks.values())

    def start(self, reference: str, nodes: list[str] | None, overrides: dict, who: Principal) -> Run:
        """Check the project's approval (status, expiry, scope, parameter bounds, code hash), then start."""
        with self.sessions() as session:
            project = lifecycle.get_project(session, reference)
            lifecycle.own(project, who)
            if project.status not in ("approved", "running"):
                raise Conflict(f"Project {reference} is {project.status}; only an approved project can run.")
            approval = lifecycle.signed_approval(lifecycle.current_approval(session, project))
            document = approval.document
            if document.expires() <= datetime.now(UTC):
                raise Conflict(f"Approval {document.approval_id} expired on {document.expires_at}; "
                               "the project must be reviewed again.")
            if document.study is None:
                raise Conflict(f"Approval {document.approval_id} declares no study schema; the project needs a new "
                               "approval with a [study] section.")
            scope = document.scope()
            nodes = list(scope) if nodes is None else nodes
            if not nodes or len(set(nodes)) != len(nodes):
                raise BadRequest(f"A run needs distinct nodes; got {nodes}.")
            outside = [n for n in nodes if n not in scope]
            if outside:
                raise Forbidden(f"Node(s) {', '.join(outside)} are not in approval {document.approval_id} "
                                f"(approved: {', '.join(scope)}).")
            algorithm = get_algorithm(document.algorithm.id)
            params = _params(algorithm, document, overrides, len(nodes), self.desk.settings.allow_exact_runs)
            groups = tuple(len(a.groups) for a in _attributes(params, document.study))
            names = {node.id: node.hospital_name or node.id
                     for node in session.scalars(select(Node).where(Node.id.in_(nodes)))}
            unknown = [n for n in nodes if n not in names]
            if unknown:
                raise NotFound(f"Node(s) {', '.join(unknown)} are not registered at this desk.")
            if len(nodes) < 2:
                raise BadRequest(f"A run needs at least 2 hospitals; got {nodes}. With one, secure aggregation could "
                                 "not hide its model updates from the desk.")
            installed = algorithm.ref()
            if installed != document.algorithm:
                raise Conflict(f"Approval {document.approval_id} names {document.algorithm.id} code hash "
                               f"{document.algorithm.code_hash[:12]}..., the desk runs {installed.code_hash[:12]}...; "
                               "the project needs a new approval for this version.")
            run = Run(id=uuid.uuid4().hex[:12], project_id=project.id, approval_id=document.approval_id,
                      started_by=who.name, algorithm_id=installed.id, algorithm_version=installed.version,
                      code_hash=installed.code_hash, params=params.model_dump(), nodes=list(nodes),
                      privacy=privacy_summary(params, document),
                      rounds=getattr(params, "rounds", 0))
            session.add(run)
            if project.status == "approved":
                lifecycle.move(self.desk, session, project, "running", who.name, f"run {run.id} started")
            session.commit()
        self.desk.record(who.name, "run.started", run.id, {"project": reference, "approval_id": document.approval_id,
                                                           "nodes": nodes, "params": params.model_dump(),
                                                           "privacy": run.privacy})
        study = document.study
        plan = RunPlan(run_id=run.id, nodes=tuple(nodes), algorithm=installed, params=params,
                       n_features=len(study.feature_names()), round_timeout=self.round_timeout, project=reference,
                       approval=approval, seal=self._seal, secure=self.desk.settings.secure_aggregation,
                       bounds=study.feature_bounds(), group_counts=groups, names=names)
        self._tasks[run.id] = (asyncio.get_running_loop().create_task(self._drive(algorithm, plan)), project.id)
        return run

    def _seal(self, task: Task) -> Task:
        info, key = self.desk.keyring.current()
        task = task.model_copy(update={"desk_key_id": info.key_id})
        return task.model_copy(update={"desk_signature": sign(key, canonical_json(task.signed_content()))})

    async def _drive(self, algorithm: Algorithm, plan: RunPlan) -> None:
        try:
            outcome = await run_algorithm(algorithm, plan, self.broker,
                                          lambda kind, **data: self._on_event(plan, kind, data))
            result = self._result(plan, outcome)
        except FedsanteError as exc:
            self._finish(plan.run_id, "failed", error=exc.message)
        except ValidationError as exc:
            self._finish(plan.run_id, "failed", error=f"The run's result could not be recorded: {exc}")
        except asyncio.CancelledError:
            self._finish(plan.run_id, "failed", error="The desk stopped during the run.")
            raise
        except Exception as exc:  # the supervisor: a run never stays 'running' because its coordinator died
            log.exception("run %s: the coordinator stopped on an unexpected error", plan.run_id)
            self._finish(plan.run_id, "failed", error=f"The desk stopped the run on an unexpected error "
                                                      f"({type(exc).__name__}: {exc}); nothing more was applied.")
        else:
            self._finish(plan.run_id, "completed", result=result)
        finally:
            self._tasks.pop(plan.run_id, None)

    def _result(self, plan: RunPlan, outcome: RunOutcome) -> RunResult:
        """The typed result: the outcome, the study's labels, the fairness layout and the run's usage."""
        usage = self._usage.get(plan.run_id, {})
        layout = fairness_layout(plan, self.desk.charter.policy.fairness_gap_threshold, outcome.subgroup_noise_sd)
        return RunResult.from_outcome(outcome, plan.approval.document.study, layout,
                                      energy=usage.get("energy", {}), communication_bytes=usage.get("bytes", {}))

    def _on_event(self, plan: RunPlan, kind: str, data: dict) -> None:
        with self.sessions() as session:
            if kind == "round":
                session.get(Run, plan.run_id).current_round = data["round"]
            elif kind in ("left_out", "note", "dropped"):
                log.warning("run %s: %s", plan.run_id, data["reason"])
                self.desk.record("desk", f"run.node_{kind}", plan.run_id, {"node": data["node"],
                                                                         "reason": data["reason"]})
            elif kind == "result":
                task: Task = data["task"]
                result: TaskResult = data["result"]
                session.add(TaskRecord(
                    id=task.task_id, run_id=plan.run_id, node_id=data["node"], round=task.round,
                    kind=task.kind, ok=result.ok, error=result.error, rejected=data["rejected"],
                    result_sha256=sha256_hex(canonical_json(result.signed_content())),
                    signature=result.signature,
                ))
                if result.audit_head:
                    record_audit_head(self.desk, data["node"], result, session)
                self._count_usage(plan.run_id, data["node"], task, result)
                if data["rejected"]:
                    log.warning("run %s: rejected reply of node %s: %s", plan.run_id, data["node"], data["rejected"])
            session.commit()

    def _count_usage(self, run_id: str, node: str, task: Task, result: TaskResult) -> None:
        """Energy each node measured for its computations, and the bytes of every task and result (carbon report)."""
        usage = self._usage.setdefault(run_id, {"energy": {}, "bytes": {}})
        if result.energy:
            try:
                record = EnergyRecord.model_validate({**result.energy, "round": task.round})
            except ValidationError as exc:
                log.warning("run %s: node %s sent an energy record the desk cannot read, left out of the carbon "
                            "report: %s", run_id, node, exc.errors()[0]["msg"])
            else:
                usage["energy"].setdefault(node, []).append(record)
        up, down = usage["bytes"].get(node, (0, 0))
        usage["bytes"][node] = (up + len(result.model_dump_json()), down + len(task.model_dump_json()))

    def _finish(self, run_id: str, status: str, *, error: str | None = None, result: RunResult | None = None) -> None:
        self._usage.pop(run_id, None)
        with self.sessions() as session:
            run = session.get(Run, run_id)
            run.status, run.error, run.finished_at = status, error, utcnow()
            run.result = None if result is None else result.model_dump(mode="json")
            session.commit()
        self.desk.record("desk", f"run.{status}", run_id, {"error": error} if error else {})
        log.info("run %s %s%s", run_id, status, f": {error}" if error else "")

    async def shutdown(self) -> None:
        tasks = [task for task, _ in self._tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def record_audit_head(desk, node_id: str, result: TaskResult, session=None) -> bool:
    """Keep the head of the node's audit chain and its privacy ledger totals, reported with a signed result
    the desk accepted for a pending task. Published heads only move forward: a head at or before the one
    already recorded (an old result re-posted, a chain rolled back) changes nothing and is audited.
    Returns whether the head was recorded."""
    own = session is None
    session = session or desk.sessions()
    try:
        node = session.get(Node, node_id)
        if node is None or result.audit_seq is None or not result.audit_head:
            return False
        if node.audit_seq is not None and result.audit_seq <= node.audit_seq:
            if result.audit_seq == node.audit_seq and result.audit_head == node.audit_head:
                return False  # the same head again (several results after one entry): nothing moves
            desk.record("desk", "audit.head_refused", node_id, {
                "task_id": result.task_id, "run_id": result.run_id, "reported_seq": result.audit_seq,
                "reported_head": result.audit_head, "published_seq": node.audit_seq,
                "published_head": node.audit_head,
                "reason": "the reported head does not move the published head forward"})
            return False
        node.audit_seq, node.audit_head, node.audit_reported_at = result.audit_seq, result.audit_head, utcnow()
        if result.privacy:
            node.privacy_spent = dict(result.privacy)
        if own:
            session.commit()
        return True
    finally:
        if own:
            session.close()


def verify_result(public_key: str, result: TaskResult) -> bool:
    return verify(public_key, canonical_json(result.signed_content()), result.signature)


def _params(algorithm: Algorithm, document: ApprovalDocument, overrides: dict, n_nodes: int,
            allow_exact: bool = False) -> AlgorithmParams:
    """The approved parameters with the run's changes, validated, checked against the bounds and the budget.

    Under DP the parameters the algorithm derives (noise multipliers) are set so that the run spends the
    approval's epsilon at its delta; a run that would spend more is refused with the numbers.
    """
    try:
        params = algorithm.parameters({**document.parameters, **overrides})
    except BadRequest as exc:
        raise BadRequest("Invalid run parameters: " + "; ".join(exc.errors), errors=exc.errors) from None
    problem = bounds_problem(document, params.model_dump(), algorithm.params_model.DERIVED)
    if problem:
        raise Forbidden(f"Run refused: {problem}.")
    if not params.dp and allow_exact:
        return params
    if not params.dp:
        raise Forbidden("Run refused: privacy 'none' is not allowed at this desk; every run is differentially "
                        "private within its approval's epsilon and delta.")
    if document.epsilon is None or not document.delta:
        raise Forbidden(f"Run refused: approval {document.approval_id} fixes no privacy budget (epsilon, delta > 0).")
    try:
        return params.for_run(epsilon=document.epsilon, delta=document.delta, n_nodes=n_nodes)
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"Run refused: {exc.message}") from None


def privacy_summary(params: AlgorithmParams, document: ApprovalDocument) -> dict:
    """What the run spends at each node, release by release, against the approval (public with the run)."""
    if not params.dp:
        return {"mechanism": "none", "epsilon": None, "delta": None, "approved_epsilon": document.epsilon, "ledger": []}
    delta = document.delta
    plan = params.privacy_plan()
    return {"mechanism": params.mechanism, "epsilon": plan.epsilon(delta), "delta": delta,
            "approved_epsilon": document.epsilon, "ledger": plan.ledger(delta)}


def _attributes(params: AlgorithmParams, study: StudySchema) -> list:
    """The study's fairness attributes the run analyses (parameter ``fairness_attributes``: names, or '*')."""
    names = getattr(params, "attribute_names", [])
    if names == ["*"]:
        return list(study.fairness)
    declared = {a.name: a for a in study.fairness}
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise BadRequest(f"Run refused: fairness attribute(s) {', '.join(unknown)} are not declared by study "
                         f"{study.id!r} (declared: {', '.join(declared) or 'none'}).")
    return [declared[n] for n in names]


def fairness_layout(plan: RunPlan, threshold: float, noise_sd: float | None = None) -> FairnessLayout:
    """How to read the subgroup sums: attributes and groups in order with the study's labels, the charter's
    threshold, and under DP the standard deviation of the noise on each summed count (from the algorithm's plan)."""
    study = plan.approval.document.study
    return FairnessLayout(threshold=threshold, noise_sd=noise_sd, attributes=[
        AttributeLayout(name=a.name, feature=a.variable, label_fr=a.label_fr, label_en=a.label_en,
                        groups=[g.name for g in a.groups],
                        group_labels={"fr": [g.label_fr for g in a.groups], "en": [g.label_en for g in a.groups]})
        for a in _attributes(plan.params, study)] if plan.secure else [])
