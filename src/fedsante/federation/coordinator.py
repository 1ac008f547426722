"""The desk's side of a federated run: stages, rounds, validation of replies, aggregation.

It talks to nodes only through a :class:`~fedsante.federation.broker.Broker`, and reports progress
through an ``on_event`` callback, so the same code runs in the desk service and in simulation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fedsante.common.errors import RunFailed
from fedsante.federation.approval import AlgorithmRef, SignedApproval
from fedsante.federation.broker import Broker
from fedsante.federation.messages import Task, TaskResult, pack, unpack
from fedsante.federation.params import LogRegParams
from fedsante.federation.secure import moments_config, round_config, secure_round, setup, subgroups_config
from fedsante.learning.logistic import Params, init_params
from fedsante.learning.scaling import Moments, Scaler, combine
from fedsante.learning.strategy import FedAvg, sum_params
from fedsante.node.evaluation import IMPORTANCE, STATS
from fedsante.privacy.dp import private_scaler, range_scaler
from fedsante.reports.fairness import attributes as fairness_attributes
from fedsante.reports.performance import BINS

GROUP_WIDTH = 4 * BINS + 2  # one GroupStats vector per subgroup
OnEvent = Callable[..., None]
Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    nodes: tuple[str, ...]
    algorithm: AlgorithmRef
    params: LogRegParams
    n_features: int
    round_timeout: float = 30.0
    project: str = ""
    approval: SignedApproval | None = None
    seal: Callable[[Task], Task] | None = None  # the desk signs every task it sends
    secure: bool = True  # fit rounds by secure aggregation: the desk sees only the sum
    bounds: tuple[np.ndarray, np.ndarray] | None = None  # public feature ranges (DP scaling, 'bounds' scaling)


@dataclass
class RunOutcome:
    params: Params
    scaler: Scaler | None
    node_metrics: dict[str, dict[str, float]]
    round_seconds: list[float] = field(default_factory=list)
    train_n: dict[str, float] = field(default_factory=dict)
    setup_seconds: float = 0.0  # secure aggregation's one-off set-up of every round's keys and shares
    node_stats: dict[str, list[float]] = field(default_factory=dict)  # evaluation statistics (reports.performance)
    node_evaluation: dict[str, dict[str, list]] = field(default_factory=dict)  # importance (node.evaluation)
    subgroup_stats: list[list[float]] = field(default_factory=list)  # per subgroup, summed over subgroup_sites
    subgroup_sites: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reply:
    arrays: dict[str, np.ndarray]
    metrics: dict[str, float]
    payload: dict = field(default_factory=dict)


def _ignore(*_args: object, **_kwargs: object) -> None:
    return None


async def run_study(plan: RunPlan, broker: Broker, on_event: OnEvent = _ignore) -> RunOutcome:
    """Run moments (with global scaling), ``rounds`` FedAvg rounds, then an evaluation."""
    _check_connected(plan, broker)
    d = plan.n_features
    extra: dict[str, np.ndarray] = {}
    scaler = None
    strategy = FedAvg(server_lr=plan.params.server_lr)
    params = init_params(d)
    shapes = {k: v.shape for k, v in params.items()}
    round_seconds, train_n, setup_seconds = [], {}, 0.0
    active = list(plan.nodes)
    rounds = list(range(1, plan.params.rounds + 1))
    groups = sum(len(a.labels) for a in fairness_attributes(plan.params.attribute_names)) if plan.secure else 0
    subgroup_round = plan.params.rounds + 2  # after the evaluation (rounds + 1)
    global_scaling = plan.params.scaling == "global"
    if plan.secure:
        async def stage(kind, nodes, payloads, quorum, *, arrays=None, r=0):
            return await _stage(plan, broker, kind, r, {**arrays, **extra} if arrays else {}, {}, on_event,
                                nodes=nodes, payloads=payloads, quorum=quorum)
        configs = {r: round_config(len(active), sum(v.size for v in params.values())) for r in rounds}
        if global_scaling:
            configs[0] = moments_config(len(active), d)
        if groups:
            configs[subgroup_round] = subgroups_config(len(active), groups * GROUP_WIDTH)
        started = time.perf_counter()
        secure, active = await setup(stage, active, configs)
        setup_seconds = time.perf_counter() - started
    if global_scaling and plan.secure:  # the desk learns only the sums over hospitals
        summed, active = await secure_round(stage, secure, 0, active, {}, kind="moments")
        scaler = _global_scaler(plan, [Moments(n=int(round(summed[0])), total=summed[1:1 + d],
                                               total_sq=summed[1 + d:])])
    elif global_scaling:
        replies = await _stage(plan, broker, "moments", 0, {}, {"n": (1,), "total": (d,), "total_sq": (d,)}, on_event)
        scaler = _global_scaler(plan, [
            Moments(n=int(r.arrays["n"][0]), total=r.arrays["total"], total_sq=r.arrays["total_sq"])
            for r in replies.values()
        ])
    elif plan.params.scaling == "bounds" and plan.bounds is not None:
        scaler = range_scaler(*plan.bounds)
    if global_scaling:
        extra = {"mean": scaler.mean, "scale": scaler.scale}
    for round_number in rounds:
        started = time.perf_counter()
        if plan.secure:
            total, active = await secure_round(
                lambda *a, **k: stage(*a, **k, r=round_number), secure, round_number, active, params)
            summed = _unflatten(total[:-1], shapes)
            total_weight = float(round(total[-1]))  # a sum of patient counts
            train_n = {"secure sum": total_weight}
        else:
            replies = await _stage(plan, broker, "fit", round_number, {**params, **extra}, shapes, on_event)
            train_n = {node: r.metrics["n"] for node, r in replies.items()}
            total_weight = sum(train_n.values())
            summed = sum_params([r.arrays for r in replies.values()])
        params = strategy.aggregate_fit(params, summed, total_weight)
        round_seconds.append(time.perf_counter() - started)
        on_event("round", round=round_number, rounds=plan.params.rounds, seconds=round_seconds[-1])
    replies = await _stage(plan, broker, "evaluate", plan.params.rounds + 1, {**params, **extra}, {}, on_event,
                           nodes=active)
    metrics = {node: reply.metrics for node, reply in replies.items()}
    stats = {node: reply.arrays[STATS].tolist() for node, reply in replies.items() if STATS in reply.arrays}
    evaluation = {node: {IMPORTANCE: reply.arrays[IMPORTANCE].tolist()} for node, reply in replies.items()
                  if IMPORTANCE in reply.arrays}
    outcome = RunOutcome(params=params, scaler=scaler, node_metrics=metrics, round_seconds=round_seconds,
                         train_n=train_n, setup_seconds=setup_seconds, node_stats=stats, node_evaluation=evaluation)
    if groups:  # the subgroups' statistics, summed over the hospitals by secure aggregation
        summed, sites = await secure_round(lambda *a, **k: stage(*a, **k, r=subgroup_round), secure, subgroup_round,
                                           active, params, kind="subgroups")
        outcome.subgroup_stats = summed[:-1].reshape(groups, GROUP_WIDTH).tolist()
        outcome.subgroup_sites = sites
        on_event("subgroups", nodes=sites)
    return outcome


def _global_scaler(plan: RunPlan, parts: list[Moments]) -> Scaler:
    """Global standardisation; under DP from noisy moments, kept sane by the public bounds."""
    if plan.params.dp:
        if plan.bounds is None:
            raise RunFailed(f"Run {plan.run_id}: global scaling under differential privacy needs the public "
                            "feature bounds of the dataset.")
        return private_scaler(parts, *plan.bounds)
    return combine(parts)


def _unflatten(flat: np.ndarray, shapes: Shapes) -> Params:
    out, start = {}, 0
    for key, shape in sorted(shapes.items()):  # nodes flatten their update in sorted key order
        size = int(np.prod(shape))
        out[key] = flat[start:start + size].reshape(shape)
        start += size
    return out


def _check_connected(plan: RunPlan, broker: Broker) -> None:
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


async def _stage(
    plan: RunPlan, broker: Broker, kind: str, round_number: int,
    arrays: dict[str, np.ndarray], expected: Shapes, on_event: OnEvent, *,
    nodes: list[str] | None = None, payloads: dict[str, dict] | None = None, quorum: int | None = None,
) -> dict[str, Reply]:
    """Send one task to every node, wait for the replies, validate them.

    Without ``quorum`` every node must answer in time; with it, the stage goes on with the nodes that
    answered if they are at least ``quorum`` (secure aggregation tolerates dropouts).
    """
    seal = plan.seal or (lambda task: task)
    packed = pack(arrays)
    tasks = {
        node: seal(Task(
            task_id=uuid.uuid4().hex, run_id=plan.run_id, project=plan.project, round=round_number, kind=kind,
            algorithm=plan.algorithm, params=plan.params.model_dump(), arrays=packed, approval=plan.approval,
            payload=(payloads or {}).get(node, {}),
        ))
        for node in (plan.nodes if nodes is None else nodes)
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
        result: TaskResult = future.result()
        reason = _problem(result, expected, need_n=kind == "evaluate" or (kind in ("moments", "fit") and not quorum))
        on_event("result", node=node, task=tasks[node], result=result, rejected=reason)
        if reason:
            raise RunFailed(f"Run {plan.run_id}, {kind} of round {round_number}: node {node} {reason}")
        replies[node] = Reply(arrays=unpack(result.arrays), metrics=dict(result.metrics), payload=dict(result.payload))
    return replies


def _problem(result: TaskResult, expected: Shapes, *, need_n: bool = True) -> str | None:
    """Why a reply cannot be aggregated, or None if it can."""
    if not result.ok:
        return f"refused the task: {result.error}"
    if need_n and ("n" not in result.metrics or not result.metrics["n"] > 0):
        return "sent no positive sample count 'n'."
    if expected and set(result.arrays) != set(expected):
        return f"sent arrays {sorted(result.arrays)}, expected {sorted(expected)}."
    for key, shape in expected.items():
        if tuple(result.arrays[key].shape) != tuple(shape):
            return f"sent array {key!r} of shape {result.arrays[key].shape}, expected {list(shape)}."
        if not np.all(np.isfinite(result.arrays[key].to_numpy())):
            return f"sent non-finite values in array {key!r}."
    return None
