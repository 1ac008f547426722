"""The hospital agent: long-polls the desk (outbound only), checks each task, runs it, posts signed results."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.algorithms.catalogue import get_algorithm, installed
from fedsante.audit import AuditLog
from fedsante.data.cohort import Cohort
from fedsante.data.mapping import Mapping
from fedsante.data.study import StudySchema
from fedsante.common.errors import ConfigError, DataError, FedsanteError, Forbidden
from fedsante.federation.auth import sign_request
from fedsante.federation.feasibility import FEASIBILITY
from fedsante.common.keys import canonical_json, sha256_hex, sign
from fedsante.federation.messages import Task, TaskResult, pack, unpack
from fedsante.node.feasibility import feasibility_payload
from fedsante.node.guard import approval_problems, privacy_problem, task_problem
from fedsante.node.ledger import DEBIT, KINDS, PrivacyLedger, debit, made
from fedsante.node.objections import Objections
from fedsante.node.outputs import Release, release_outputs
from fedsante.node.secure import SecureRounds
from fedsante.node.policy import Acceptances, NodePolicy, load_policy
from fedsante.node.replies import raise_for_status
from fedsante.reports.carbon import ComputeMeter

log = logging.getLogger("fedsante.node")
CohortSource = Callable[[StudySchema, Mapping], Cohort]
"""Compiles this node's dataset for a study with the operator's mapping (:func:`fedsante.node.datasets.build_cohort`)."""
TASKS_PATH = "/api/v1/node/tasks/next"
RESULTS_PATH = "/api/v1/node/results"


@dataclass
class NodeGuard:
    """The node's local state that decides whether a task may run: policy, acceptances, audit chain."""

    node_id: str
    dataset: str
    policy_path: Path
    acceptances: Acceptances
    audit: AuditLog
    ledger: PrivacyLedger | None = None  # None: read from the audit chain on first use
    seen: set[str] = field(default_factory=set)
    policy: NodePolicy | None = None  # as read by the last call to refusal()

    def refusal(self, task: Task, now: datetime | None = None) -> str | None:
        """Why ``task`` must not run here (policy and acceptances are re-read, so edits apply at once)."""
        if task.task_id in self.seen:
            return f"task {task.task_id} was already received once (a replayed task is never run twice)"
        self.seen.add(task.task_id)
        try:
            policy = self.policy = load_policy(self.policy_path)  # read once per task, used below too
            acceptances = self.acceptances.all()
        except ConfigError as exc:
            return exc.message
        if task.approval and task.approval.document.approval_id not in acceptances:
            acceptances = self._auto_accept(task, policy, now or datetime.now(UTC)) or acceptances
        catalogue = installed()
        derived = get_algorithm(task.algorithm.id).params_model.DERIVED if task.algorithm.id in catalogue else ()
        return task_problem(task, node_id=self.node_id, dataset=self.dataset, policy=policy,
                            acceptances=acceptances, installed=catalogue, now=now or datetime.now(UTC),
                            derived=derived) or self._privacy_problem(task, policy)

    def _privacy_problem(self, task: Task, policy: NodePolicy) -> str | None:
        """Recompute what the run spends here; refuse beyond the approval or this dataset's remaining budget."""
        if task.kind.startswith("secagg_"):
            return None  # key exchange releases nothing about the data
        if self.ledger is None:
            self.ledger = PrivacyLedger(self.audit)
        return privacy_problem(task, get_algorithm(task.algorithm.id).params_model, dataset=self.dataset, policy=policy,
                               spent=self.ledger.spent(self.dataset, excluding_run=task.run_id),
                               made=self.ledger.releases(self.dataset, task.run_id))

    def debit(self, task: Task) -> dict | None:
        """The ledger debit of the release this task made (None for privacy 'none' or a key exchange)."""
        params = get_algorithm(task.algorithm.id).params_model.model_validate(task.params)
        if not params.dp or task.kind not in KINDS:
            return None
        delta, plan = task.approval.document.delta, params.privacy_plan()
        counts = self.ledger.releases(self.dataset, task.run_id)
        alone = made(plan, {task.kind: 1})
        so_far = made(plan, {**counts, task.kind: counts[task.kind] + 1})
        return debit(dataset=self.dataset, project=task.project, run=task.run_id, kind=task.kind,
                     round_number=task.round, epsilon=alone.epsilon(delta), run_epsilon=so_far.epsilon(delta),
                     delta=delta, mechanism=params.privacy)

    def privacy_totals(self) -> dict:
        if self.ledger is None:
            return {}
        spent = self.ledger.totals().get(self.dataset)
        cap = self.policy.datasets.get(self.dataset) if self.policy else None
        return {"dataset": self.dataset, **(spent.as_dict() if spent else {"epsilon": 0.0, "delta": 0.0, "runs": 0}),
                "epsilon_cap": cap.epsilon_cap if cap else None}


    def requires_secure_aggregation(self) -> bool:
        return self.policy.require_secure_aggregation

    def k_min(self, task: Task) -> int:
        """The strictest minimum cell size that applies: the approval's or this node's floor."""
        return max(task.approval.document.k_min, self.policy.k_min_floor)

    def _auto_accept(self, task: Task, policy: NodePolicy, now: datetime) -> dict | None:
        """Accept an approval by policy when it lies within the operator's auto-accept limits."""
        rule, doc = policy.auto_accept, task.approval.document
        if not (rule.enabled and doc.algorithm.id in rule.algorithms and doc.purpose_category in rule.purposes
                and doc.epsilon is not None and doc.epsilon <= rule.max_epsilon):
            return None
        if approval_problems(task.approval, node_id=self.node_id, dataset=self.dataset, policy=policy,
                             installed=installed(), now=now):
            return None  # the task check will name the problems
        entry = self.acceptances.decide(task.approval, "accepted", "policy:auto_accept", "within auto-accept limits")
        self.audit.append("policy:auto_accept", "approval.accepted", doc.approval_id,
                          {"project": doc.project_reference, "sha256": entry["sha256"], "reason": entry["reason"]})
        return self.acceptances.all()


class NodeAgent:
    """One node's loop. ``client`` is an ``httpx.AsyncClient`` whose base URL is the desk."""

    def __init__(self, *, node_id: str, key: Ed25519PrivateKey, client: httpx.AsyncClient, guard: NodeGuard,
                 table: Cohort | None = None, source: CohortSource | None = None, poll_seconds: float = 10.0,
                 meter: ComputeMeter | None = None, objections: Objections | None = None) -> None:
        if (table is None) == (source is None):
            raise ValueError("NodeAgent needs exactly one of 'table' (a fixed cohort, for simulations) or 'source' "
                             "(compiles the node's dataset for each approved study).")
        self.node_id = node_id
        self.table = self.base_table = table
        self.source = source
        self.key = key
        self.client = client
        self.guard = guard
        self.poll_seconds = poll_seconds
        self.secure = SecureRounds(node_id)
        self.meter = meter  # CodeCarbon, one per process; None: energy is not measured
        self._energy: dict = {}
        self.objections = objections  # None: this node does not take part in objections (simulations)
        self._refreshed, self._cohort_run = -math.inf, None

    def handle(self, task: Task) -> TaskResult:
        """Check the task, compute it locally, log it in the node's chain, return the signed result."""
        error = self.guard.refusal(task)
        arrays, metrics, suppressed, payload = {}, {}, [], {}
        self._energy = {}
        if error is None:
            try:
                self._run_table(task)
                if task.kind == FEASIBILITY:
                    payload = feasibility_payload(self.table, self.guard.k_min(task),
                                                  binary=getattr(self.table, "binary", True))
                elif task.kind.startswith("secagg_") or "forwarded" in task.payload:
                    payload = self.secure.handle(task, lambda: self._vector(task),
                                                 get_algorithm(task.algorithm.id).secure_config)
                else:
                    self._check_plain(task)
                    out, metrics, suppressed = self._compute(task)
                    arrays = pack(out)
            except (FedsanteError, ValueError) as exc:
                error = str(exc)
        spent = self.guard.debit(task) if error is None else None  # what left the node, counted
        result = TaskResult(task_id=task.task_id, run_id=task.run_id, node_id=self.node_id, ok=error is None,
                            error=error, arrays=arrays, metrics=metrics, payload=payload, energy=self._energy)
        details = {"task_id": task.task_id, "project": task.project, "kind": task.kind, "round": task.round,
                   "approval_id": task.approval.document.approval_id if task.approval else None,
                   "result_sha256": sha256_hex(canonical_json(result.signed_content()))}
        if error:
            log.warning("node %s refused task %s (%s): %s", self.node_id, task.task_id, task.kind, error)
            entry = self.guard.audit.append(self.node_id, "task.refused", task.run_id, {**details, "reason": error})
        else:
            extra = {**({"suppressed": suppressed} if suppressed else {}), **({DEBIT: spent} if spent else {})}
            entry = self.guard.audit.append(self.node_id, "task.executed", task.run_id, {**details, **extra})
            if self.guard.ledger is not None:
                self.guard.ledger.note(entry)
        result = result.model_copy(update={"audit_seq": entry.seq, "audit_head": entry.hash,
                                           "privacy": self.guard.privacy_totals()})
        signature = sign(self.key, canonical_json(result.signed_content()))
        return result.model_copy(update={"signature": signature})

    def _run_table(self, task: Task) -> Cohort:
        """The run's cohort: the dataset compiled for the approved study with the operator's mapping, minus
        the patients who objected (built at the run's first task, then kept for the run)."""
        if self._cohort_run == task.run_id:
            return self.table
        base = self.base_table if self.source is None else self._compile(task)
        self.table = self.objections.cohort(base, task.run_id) if self.objections is not None else base
        self._cohort_run = task.run_id
        return self.table

    def _compile(self, task: Task) -> Cohort:
        doc = task.approval.document
        entry = self.guard.acceptances.all().get(doc.approval_id, {})
        mapping = Mapping.model_validate(entry.get("mapping") or {"variables": []})
        try:
            return self.source(doc.study, mapping)
        except DataError as exc:  # the details (values, counts) stay here: only the kind of problem leaves
            log.warning("node %s: dataset not readable for study %s: %s", self.node_id, doc.study.id, exc.message)
            raise Forbidden(f"this hospital's data cannot be compiled for study {doc.study.id!r} (missing columns or "
                            "values the mapping does not cover); its operator sees the details with "
                            f"'fedsante node check --project {doc.project_reference}'") from None

    def _check_plain(self, task: Task) -> None:
        """Refuse to send in plain what leaves this node only summed with other hospitals'."""
        algorithm = get_algorithm(task.algorithm.id)
        if task.kind in algorithm.update_kinds and self.guard.requires_secure_aggregation():
            raise Forbidden("this node sends model updates only under secure aggregation "
                            "(policy require_secure_aggregation = true)")
        if task.kind in algorithm.secure_kinds:
            raise Forbidden(f"the {task.kind!r} statistics leave this node only summed with other hospitals' "
                            "by secure aggregation (k_min applies to the sums)")

    def _compute(self, task: Task) -> tuple[dict, dict, list[str]]:
        """Run the task on the local table and pass its outputs through disclosure control."""
        k_min = self.guard.k_min(task)
        algorithm = get_algorithm(task.algorithm.id)
        if task.kind not in algorithm.kinds:
            raise Forbidden(f"algorithm {algorithm.id!r} has no task kind {task.kind!r} "
                            f"(it has {', '.join(sorted(algorithm.kinds))})")
        run = functools.partial(algorithm.execute, task.kind, algorithm.parameters(task.params),
                                unpack(task.arrays), self.table, node_id=self.node_id, round_number=task.round)
        if self.meter is None:
            out, metrics = run()
        else:
            with self.meter.measure(f"{task.kind} round {task.round}") as measured:
                out, metrics = run()
            self._energy = measured.record.as_dict()
        y_test = self.table.part("test")[1]
        release = Release(test=task.kind in algorithm.test_kinds, fixed=algorithm.fixed_arrays,
                          per_class=algorithm.per_class_metrics, evaluation=task.kind in algorithm.evaluation_kinds,
                          class_arrays=algorithm.class_arrays)
        return release_outputs(release, out, metrics, n_train=len(self.table.part("train")[1]),
                               n_test=len(y_test), n_total=len(self.table.y), k_min=k_min,
                               group=self.node_id, n_positive=int(np.sum(y_test == 1)))

    def _vector(self, task: Task) -> np.ndarray:
        """What secure aggregation masks (the algorithm's codec), after disclosure control."""
        out, metrics, _ = self._compute(task)
        return get_algorithm(task.algorithm.id).secure_vector(task.kind, out, metrics)

    async def poll_once(self) -> bool:
        """One long-poll; handles the task if one came. Returns True when a task was handled."""
        if self.objections is not None and time.monotonic() - self._refreshed > self.poll_seconds:
            await self._refresh_objections()
        path = f"{TASKS_PATH}?wait={self.poll_seconds:g}"
        headers = sign_request(self.key, self.node_id, "GET", path, b"")
        response = await self.client.get(path, headers=headers, timeout=self.poll_seconds + 10)
        if response.status_code == 204:
            return False
        raise_for_status(response)
        task = Task.model_validate_json(response.content)
        if self.objections is not None and task.run_id != self._cohort_run:  # a new run: objections first
            await self._refresh_objections()
        result = self.handle(task)
        body = result.model_dump_json().encode()
        headers = sign_request(self.key, self.node_id, "POST", RESULTS_PATH, body)
        headers["content-type"] = "application/json"
        raise_for_status(await self.client.post(RESULTS_PATH, content=body, headers=headers))
        return True

    async def _refresh_objections(self) -> None:
        added, removed = await self.objections.refresh(self.client)
        self._refreshed = time.monotonic()
        if added or removed:
            log.info("node %s: %d objection(s) applied, %d withdrawn", self.node_id, added, removed)
        if self.objections.newly_held:
            log.warning("node %s: %d new objection(s) held, not applied: more than the policy's objection_burst_limit "
                        "at once; review, then 'fedsante node objections confirm'", self.node_id,
                        self.objections.newly_held)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set; back off (up to 10 s) while the desk is unreachable."""
        stop = stop or asyncio.Event()
        delay = 0.5
        while not stop.is_set():
            try:
                await self.poll_once()
                delay = 0.5
            except (httpx.TransportError, FedsanteError) as exc:
                log.warning("node %s: desk at %s unreachable or refusing (%s); retrying in %.1f s",
                            self.node_id, self.client.base_url, _describe(exc), delay)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


