"""Logistic regression at the desk: the plan of stages, seeing only what the nodes release.

Moments (with global scaling), ``rounds`` rounds of the strategy (:mod:`fedsante.learning.strategies`,
chosen by the ``strategy`` parameter) over summed updates, one evaluation
(each hospital's statistics), then the subgroups' statistics summed over the hospitals by secure
aggregation. With secure aggregation (the default) the desk never holds one node's update or weight.
"""

from __future__ import annotations

import time

import numpy as np

from fedsante.common.errors import RunFailed
from fedsante.federation.coordinator import RunContext, RunOutcome, RunPlan
from fedsante.federation.secure import moments_config, round_config, subgroups_config
from fedsante.algorithms.logreg import layout
from fedsante.algorithms.logreg.evaluation import GROUP_WIDTH, IMPORTANCE, STATS, SUBGROUPS, release_sensitivity
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.learning.logistic import Params, init_params
from fedsante.learning.scaling import Moments, Scaler, combine
from fedsante.learning.strategies import make_strategy, sum_params
from fedsante.learning.private_scaling import private_scaler, range_scaler

Shapes = dict[str, tuple[int, ...]]


async def run_logreg(context: RunContext) -> RunOutcome:
    """Run moments (with global scaling), the training rounds, the evaluation and the subgroups."""
    plan, params_ = context.plan, context.plan.params
    d = plan.n_features
    model = init_params(d)
    shapes = {k: v.shape for k, v in model.items()}
    rounds = list(range(1, params_.rounds + 1))
    groups = sum(plan.group_counts) if plan.secure and params_.attribute_names else 0
    subgroup_round = params_.rounds + 2  # after the evaluation (rounds + 1)
    if plan.secure:
        configs = {r: round_config(len(context.nodes), sum(v.size for v in model.values())) for r in rounds}
        if params_.scaling == "global":
            configs[0] = moments_config(len(context.nodes), d)
        if groups:
            configs[subgroup_round] = subgroups_config(len(context.nodes), groups * GROUP_WIDTH)
        await context.secure_setup(configs)
    scaler = await _scaler(context)
    extra = {} if params_.scaling != "global" else {"mean": scaler.mean, "scale": scaler.scale}
    model, round_seconds, train_n = await _train(context, model, shapes, extra)
    replies = await context.stage("evaluate", params_.rounds + 1, {**model, **extra}, need_n=True)
    outcome = RunOutcome(
        params=model, scaler=scaler, node_metrics={node: reply.metrics for node, reply in replies.items()},
        round_seconds=round_seconds, train_n=train_n, setup_seconds=context.setup_seconds,
        node_stats={node: reply.arrays[STATS].tolist() for node, reply in replies.items() if STATS in reply.arrays},
        node_evaluation={node: {IMPORTANCE: reply.arrays[IMPORTANCE].tolist()} for node, reply in replies.items()
                         if IMPORTANCE in reply.arrays})
    if groups:  # the subgroups' statistics, summed over the hospitals by secure aggregation
        summed = await context.secure_sum("subgroups", subgroup_round, {**model, **extra})
        outcome.subgroup_stats = layout.subgroups(groups).unpack(summed)[SUBGROUPS].tolist()
        outcome.subgroup_sites = list(context.nodes)
        if params_.dp:
            outcome.subgroup_noise_sd = params_.evaluation_noise_multiplier * release_sensitivity(len(plan.group_counts))
        context.on_event("subgroups", nodes=list(context.nodes))
    return outcome


async def _train(context: RunContext, model: Params, shapes: Shapes,
                 extra: dict[str, np.ndarray]) -> tuple[Params, list[float], dict[str, float]]:
    """The training rounds: each sums the nodes' weighted updates (securely by default) and steps the strategy."""
    plan, params_ = context.plan, context.plan.params
    settings = {"server_lr": params_.server_lr, **({"mu": params_.proximal_mu} if params_.strategy == "fedprox" else {})}
    strategy = make_strategy(params_.strategy, **settings)
    round_seconds, train_n = [], {}
    for round_number in range(1, params_.rounds + 1):
        started = time.perf_counter()
        if plan.secure:
            total = await context.secure_sum("fit", round_number, {**model, **extra})
            summed = layout.update(shapes).unpack(total)
            total_weight = float(round(summed.pop(layout.WEIGHT)[0]))  # a sum of patient counts
            train_n = {"secure sum": total_weight}
        else:
            replies = await context.stage("fit", round_number, {**model, **extra}, shapes, need_n=True)
            train_n = {node: float(r.metrics["n"]) for node, r in replies.items()}
            total_weight = sum(train_n.values())
            summed = sum_params([r.arrays for r in replies.values()])
        model = strategy.aggregate_fit(model, summed, total_weight)
        round_seconds.append(time.perf_counter() - started)
        context.on_event("round", round=round_number, rounds=params_.rounds, seconds=round_seconds[-1])
    return model, round_seconds, train_n


async def _scaler(context: RunContext) -> Scaler | None:
    """Global standardisation from the summed moments, the public bounds' range, or None (each node its own)."""
    plan, d = context.plan, context.plan.n_features
    scaling = plan.params.scaling
    if scaling == "global" and plan.secure:  # the desk learns only the sums over hospitals
        summed = await context.secure_sum("moments", 0, {})
        m = layout.moments(d).unpack(summed)
        return _global_scaler(plan, [Moments(n=int(round(m[layout.WEIGHT][0])), total=m["total"],
                                             total_sq=m["total_sq"])])
    if scaling == "global":
        replies = await context.stage("moments", 0, {}, {"n": (1,), "total": (d,), "total_sq": (d,)}, need_n=True)
        return _global_scaler(plan, [Moments(n=int(r.arrays["n"][0]), total=r.arrays["total"],
                                             total_sq=r.arrays["total_sq"]) for r in replies.values()])
    if scaling == "bounds" and plan.bounds is not None:
        return range_scaler(*plan.bounds)
    return None


def _global_scaler(plan: RunPlan, parts: list[Moments]) -> Scaler:
    """Global standardisation; under DP from noisy moments, kept sane by the public bounds."""
    params: LogRegParams = plan.params
    if params.dp:
        if plan.bounds is None:
            raise RunFailed(f"Run {plan.run_id}: global scaling under differential privacy needs the public "
                            "feature bounds of the study.")
        return private_scaler(parts, *plan.bounds)
    return combine(parts)
