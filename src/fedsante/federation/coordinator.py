"""The desk's side of a federated run, whatever the algorithm: stages, feasibility, validation of replies.

It talks to nodes only through a :class:`~fedsante.federation.broker.Broker` and reports progress
through an ``on_event`` callback, so the same code runs in the desk service and in simulation. An
algorithm's plan (:meth:`fedsante.algorithms.base.Algorithm.run`) drives the run through a
:class:`RunContext`: plain stages, secure-aggregation set-up and secure sums.

Every run opens with the ``feasibility`` stage (:mod:`fedsante.federation.feasibility`): each node says,
from its true counts, whether it meets the approval's k_min, with reason codes and never a count. Nodes
below are left out before anything is computed or spent; the run goes on if the secure-aggregation
threshold of hospitals remains, else it fails at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedsante.common.errors import InvalidReply, RunFailed
from fedsante.federation.approval import AlgorithmRef, SignedApproval
from fedsante.federation.broker import Broker
from fedsante.federation.feasibility import FEASIBILITY, describe, read_reply
from fedsante.federation.messages import Task, TaskResult, pack, unpack
from fedsante.federation.secure import SecureRun, secure_round, setup
from fedsante.privacy.secagg import SecAggConfig

OnEvent = Callable[..., None]
Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    nodes: tuple[str, ...]
    algorithm: AlgorithmRef
    params: Any  # the algorithm's validated parameters (an AlgorithmParams model)
    n_features: int
    round_timeout: float = 30.0
    project: str = ""
    approval: SignedApproval | None = None
    seal: Callable[[Task], Task] | None = None  # the desk signs every task it sends
    secure: bool = True  # updates by secure aggregation: the desk sees only sums
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # public feature ranges (DP scaling, 'bounds' scaling)
    group_counts: tuple[int, ...] = ()  # groups of each fairness attribute of the study, in order
    names: dict[str, str] = field(default_factory=dict)  # node id -> hospital name, for messages

    def threshold(self) -> int:
        """Hospitals that must remain after the feasibility stage: 2, the fewest a run may have (secure aggregation
        then needs a majority of those that remain, :func:`fedsante.federation.secure.round_config`)."""
        return 2


@dataclass
class RunOutcome:
    """What an algorithm's plan returns to the desk (turned into the typed run result)."""

    params: dict[str, np.ndarray]
    scaler: Any | None
    node_metrics: dict[str, dict[str, float | None]]
    round_seconds: list[float] = field(default_factory=list)
    train_n: dict[str, float] = field(default_factory=dict)
    setup_seconds: float = 0.0  # secure aggregation's one-off set-up of every round's keys and shares
    node_stats: dict[str, list[float]] = field(default_factory=dict)  # evaluation statistics per hospital
    node_evaluation: dict[str, dict[str, list]] = field(default_factory=dict)  # e.g. permutation importance
    subgroup_stats: list[list[float]] = field(default_factory=list)  # per subgroup, summed over subgroup_sites
    subgroup_sites: list[str] = field(default_factory=list)
    subgroup_noise_sd: float | None = None  # under DP, the noise standard deviation of each summed subgroup count
    left_out: dict[str, str] = field(default_factory=dict)  # node -> plain reason, from the feasibility stage
    dropped: dict[str, str] = field(default_factory=dict)  # node -> the stage it did not answer (secure aggregation)
    notes: dict[str, list[str]] = field(default_factory=dict)  # node -> plain notes (a class under k_min...)
    left_out_codes: dict[str, str] = field(default_factory=dict)  # node -> reason code (feasibility.REASONS)
    note_codes: dict[str, list[str]] = field(default_factory=dict)  # node -> note codes (feasibility.NOTES)


@dataclass(frozen=True)
class Reply:
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float | None]
    payload: dict = field(default_factory=dict)


def _ignore(*_args: object, **_kwargs: object) -> None:
    return None


@dataclass
class RunContext:
    """What an algorithm's desk-side plan drives a run with. ``nodes`` are the hospitals still taking part."""

    plan: RunPlan
    broker: Broker
    on_event: OnEvent = _ignore
    nodes: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    left_out_codes: dict[str, str] = field(default_factory=dict)
    note_codes: dict[str, list[str]] = field(default_factory=dict)
    secure_state: SecureRun | None = None
    setup_seconds: float = 0.0

    async def stage(self, kind: str, round_number: int, arrays: dict[str, np.ndarray] | None = None,
                    expected: Shapes | None = None, *, nodes: list[str] | None = None,
                    payloads: dict[str, dict] | None = None, quorum: int | None = None,
                    need_n: bool = False) -> dict[str, Reply]:
        """One task per node (default: every node taking part), replies validated (see :func:`run_stage`)."""
        return await run_stage(self.plan, self.broker, kind, round_number, arrays or {}, expected or {},
                               self.on_event, nodes=self.nodes if nodes is None else nodes,
                               payloads=payloads, quorum=quorum, need_n=need_n)

    async def secure_setup(self, configs: dict[int, SecAggConfig]) -> None:
        """Keys and sealed shares for every secure round of the run (``configs``: round -> settings)."""
        started = time.perf_counter()

        async def stage(kind, nodes, payloads, quorum, *, arrays=None):
            return await self.stage(kind, 0, arrays, nodes=nodes, payloads=payloads, quorum=quorum)

        before = list(self.nodes)
        self.secure_state, self.nodes = await setup(stage, self.nodes, configs)
        self.setup_seconds = time.perf_counter() - started
        self._note_dropped(before, "the secure-aggregation set-up")

    async def secure_sum(self, kind: str, round_number: int, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The sum over the nodes of what each releases for ``kind`` (the desk never holds one node's vector).

        Nodes that drop out are left out of the rest of the run; below the threshold the round fails.
        """
        if self.secure_state is None:
            raise RunFailed(f"Run {self.plan.run_id}: a secure sum was asked before the secure-aggregation set-up.")

        async def stage(kind_, nodes, payloads, quorum, *, arrays=None):
            return await self.stage(kind_, round_number, arrays, nodes=nodes, payloads=payloads, quorum=quorum)

        before = list(self.nodes)
        total, self.nodes = await secure_round(stage, self.secure_state, round_number, self.nodes, arrays, kind=kind)
        self._note_dropped(before, f"{kind} of round {round_number}")
        return total

    def _note_dropped(self, before: list[str], stage: str) -> None:
        """Record the nodes that stopped answering (the run goes on without them, within the threshold)."""
        for node in before:
            if node not in self.nodes and node not in self.dropped:
                self.dropped[node] = f"no reply to {stage}: left out of the rest of the run"
                self.on_event("dropped", node=node, reason=self.dropped[node])


async def run_algorithm(algorithm, plan: RunPlan, broker: Broker, on_event: OnEvent = _ignore) -> RunOutcome:
    """Check that every node is connected, run the feasibility stage, then the algorithm's plan."""
    check_connected(plan, broker)
    context = RunContext(plan=plan, broker=broker, on_event=on_event, nodes=list(plan.nodes))
    await feasibility(context)
    outcome = await algorithm.run(context)
    outcome.left_out, outcome.notes = dict(context.left_out), dict(context.notes)
    outcome.dropped = dict(context.dropped)
    outcome.left_out_codes, outcome.note_codes = dict(context.left_out_codes), dict(context.note_codes)
    return outcome


async def feasibility(context: RunContext) -> None:
    """Leave out the nodes below k_min before anything is computed; fail at once if too few remain."""
    plan = context.plan
    replies = await context.stage(FEASIBILITY, 0)
    for node, reply in replies.items():
        meets, code, notes = read_reply(reply.payload)
        hospital = plan.names.get(node, node)
        if not meets:
            context.left_out[node] = describe(hospital, code, plan.approval)
            context.left_out_codes[node] = code
        for note in notes:
            context.note_codes.setdefault(node, []).append(note)
            context.notes.setdefault(node, []).append(describe(hospital, note, plan.approval))
            context.on_event("note", node=node, reason=context.notes[node][-1])
    context.nodes = [n for n in context.nodes if n not in context.left_out]
    for node, reason in context.left_out.items():
        context.on_event("left_out", node=node, reason=reason)
    if len(context.nodes) < plan.threshold():
        reasons = " ".join(context.left_out.values())
        raise RunFailed(f"Run {plan.run_id} cannot go on: {len(context.nodes)} of {len(plan.nodes)} hospitals meet "
                        f"the approval's minimum counts, {plan.threshold()} needed. {reasons} Nothing was computed "
                        "and no privacy budget was spent.")


def check_connected(plan: RunPlan, broker: Broker) -> None:
    absent = [node for node in plan.nodes if not broker.connected(node)]
    if absent:
        details = []
        for node in absent:
            seen = broker.last_seen(node)
            details.append(f"{node} ({'never connected' if seen is None else f'last seen {seen:.0f} s ago'})")
        raise RunFailed(
            f"Run {plan.run_id} cannot start: node(s) not connected to the desk: {', '.join(details)}. "
            "Start each with 'fedsante node serve --config <file>' and check its desk URL."
        )


async def run_stage(
    plan: RunPlan, broker: Broker, kind: str, round_number: int,
    arrays: dict[str, np.ndarray], expected: Shapes, on_event: OnEvent, *,
    nodes: list[str], payloads: dict[str, dict] | None = None, quorum: int | None = None, need_n: bool = False,
) -> dict[str, Reply]:
    """Send one task to every node of ``nodes``, wait for the replies, validate them.

    Without ``quorum`` every node must answer in time; with it, the stage goes on with the nodes that
    answered if they are at least ``quorum`` (secure aggregation tolerates dropouts). ``need_n``: each
    reply must carry a positive patient count ``n``.
    """
    seal = plan.seal or (lambda task: task)
    packed = pack(arrays)
    tasks = {
        node: seal(Task(
            task_id=uuid.uuid4().hex, run_id=plan.run_id, node_id=node, project=plan.project, round=round_number,
            kind=kind,
            algorithm=plan.algorithm, params=plan.params.model_dump(), arrays=packed, approval=plan.approval,
            study_sha256=plan.approval.document.study_sha256 if plan.approval else "",
            payload=(payloads or {}).get(node, {}),
        ))
        for node in nodes
    }
    futures = {node: broker.submit(node, task) for node, task in tasks.items()}
    await asyncio.wait(futures.values(), timeout=plan.round_timeout)
    late = [node for node, future in futures.items() if not future.done()]
    if late:
        broker.cancel([tasks[node].task_id for node in late])
        if quorum is None or len(tasks) - len(late) < quorum:
            needed = "" if quorum is None else f"; {len(tasks) - len(late)} of {len(tasks)} answered, {quorum} needed"
            raise RunFailed(
                f"Run {plan.run_id}, {kind} of round {round_number}: no reply from node(s) {', '.join(late)} "
                f"within {plan.round_timeout:g} s{needed}. Check that they are running and can reach the desk; "
                "nothing of this round was applied."
            )
    replies = {}
    for node, future in futures.items():
        if node in late:
            continue
        try:
            result: TaskResult = future.result()
        except InvalidReply as exc:
            raise RunFailed(f"Run {plan.run_id}, {kind} of round {round_number}: node {node} {exc.message}; "
                            "nothing of this round was applied.") from None
        reason = reply_problem(result, expected, need_n=need_n)
        on_event("result", node=node, task=tasks[node], result=result, rejected=reason)
        if reason:
            raise RunFailed(f"Run {plan.run_id}, {kind} of round {round_number}: node {node} {reason}")
        replies[node] = Reply(arrays=unpack(result.arrays), metrics=dict(result.metrics), payload=dict(result.payload))
    return replies


def reply_problem(result: TaskResult, expected: Shapes, *, need_n: bool = True) -> str | None:
    """Why a reply cannot be aggregated, or None if it can."""
    if not result.ok:
        return f"refused the task: {result.error}"
    if need_n and not (result.metrics.get("n") or 0) > 0:
        return "sent no positive sample count 'n'."
    if expected and set(result.arrays) != set(expected):
        return f"sent arrays {sorted(result.arrays)}, expected {sorted(expected)}."
    for key, shape in expected.items():
        if tuple(result.arrays[key].shape) != tuple(shape):
            return f"sent array {key!r} of shape {result.arrays[key].shape}, expected {list(shape)}."
        if not np.all(np.isfinite(result.arrays[key].to_numpy())):
            return f"sent non-finite values in array {key!r}."
    return None
