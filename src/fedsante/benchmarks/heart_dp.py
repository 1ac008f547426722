"""`fedsante bench heart --dp`: accuracy against the privacy budget, secure aggregation on, next to FLamby's DP-FedAvg.

Each run is a full governed study in-process (approval at epsilon, every node checking and debiting
it). Its released model is then scored *exactly* on each hospital's test rows from the public
bundled files, as FLamby scores its models: mean accuracy over the 4 hospitals, pooled AUC and log
loss, and the loss-threshold membership attack's AUC (train against test rows, pooled), next to the
ceiling that the DP guarantee puts on any such attack. The noise comes from the operating system
(a DP requirement), so repetitions differ; the table shows their mean and spread.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedsante.data.cohort import Cohort
from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.federation.result import RunResult
from fedsante.learning.logistic import predict_proba
from fedsante.learning.scaling import Scaler
from fedsante.privacy.membership import dp_auc_ceiling, log_losses, loss_threshold_auc
from fedsante.reports.metrics import accuracy, roc_auc
from fedsante.sim.simulation import simulate_study

EPSILONS = (0.5, 1.0, 2.0, 5.0, 10.0)
DELTA = 1e-5
FLAMBY_DP = {1.0: "0.685-0.706", 5.0: "0.698-0.705", 10.0: "0.698-0.705"}
"""FLamby's DP-FedAvg on Fed-Heart-Disease (mean accuracy over the 4 centres, range over delta; flamby.md §6)."""
TARGET = 0.76  # mean accuracy at epsilon = 1, delta = 1e-5


@dataclass(frozen=True)
class Score:
    accuracy: float  # mean over the 4 hospital test sets
    auc: float  # pooled test rows
    log_loss: float  # pooled test rows
    membership_auc: float  # loss-threshold attack, pooled train against pooled test rows
    epsilon: float  # what each node spent, from the run's accounting
    secure_round_seconds: float


def score(run: dict, tables: dict[str, Cohort]) -> Score:
    """Score a completed run's released model exactly on the public test (and training) rows."""
    result = RunResult.model_validate(run["result"])
    model = {k: np.array(v) for k, v in result.model.items()}
    if result.scaler is None:
        raise ValueError(f"Run {run['id']} has no global standardisation; the benchmark runs with scaling 'global'.")
    scaler = Scaler(mean=np.array(result.scaler.mean), scale=np.array(result.scaler.scale))

    def proba(X: np.ndarray, table: Cohort) -> np.ndarray:
        return predict_proba(model, scaler.transform(np.clip(X, *table.bounds)))

    parts = {h: {s: t.part(s) for s in ("train", "test")} for h, t in tables.items()}
    test_p = {h: proba(parts[h]["test"][0], tables[h]) for h in tables}
    y_test = np.concatenate([parts[h]["test"][1] for h in tables])
    p_test = np.concatenate([test_p[h] for h in tables])
    p_train = np.concatenate([proba(parts[h]["train"][0], tables[h]) for h in tables])
    y_train = np.concatenate([parts[h]["train"][1] for h in tables])
    return Score(
        accuracy=statistics.fmean(accuracy(parts[h]["test"][1], test_p[h]) for h in tables),
        auc=roc_auc(y_test, p_test), log_loss=float(np.mean(log_losses(y_test, p_test))),
        membership_auc=loss_threshold_auc(log_losses(y_train, p_train), log_losses(y_test, p_test)),
        epsilon=run["privacy"]["epsilon"], secure_round_seconds=statistics.median(result.round_seconds),
    )


def run_heart_dp(epsilons: tuple[float, ...] = EPSILONS, repeats: int = 5,
                 on_step: Callable[[str], None] | None = None) -> tuple[dict[float, list[Score]], dict[str, float]]:
    """Scores per epsilon (``repeats`` runs each), and secure vs plain round times measured in the same run."""
    tables = {h: load_hospital(h) for h in HOSPITALS}
    scores: dict[float, list[Score]] = {}
    for epsilon in epsilons:
        scores[epsilon] = []
        for i in range(repeats):
            if on_step:
                on_step(f"epsilon {epsilon:g}, run {i + 1} of {repeats}")
            run = asyncio.run(simulate_study(tables, {}, epsilon=epsilon))
            scores[epsilon].append(score(run, tables))
    if on_step:
        on_step("round overhead: the same DP run with plain (unmasked) rounds")
    plain = asyncio.run(simulate_study(tables, {}, secure=False))
    secure = asyncio.run(simulate_study(tables, {}))
    overhead = {name: statistics.median(RunResult.model_validate(run["result"]).round_seconds)
                for name, run in (("secure", secure), ("plain", plain))}
    return scores, overhead


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def print_heart_dp(repeats: int, console, epsilons: tuple[float, ...] = EPSILONS) -> dict[float, list[Score]]:
    """Run the benchmark and print the table, the verdict on the target and the round overhead."""
    from rich.table import Table

    with console.status("benchmark") as status:
        scores, overhead = run_heart_dp(epsilons, repeats, on_step=lambda s: status.update(f"bench heart --dp: {s}"))
    table = Table(title=f"Fed-Heart-Disease under record-level DP (delta = {DELTA:g}, every release counted, "
                        f"secure aggregation on), {repeats} runs per epsilon")
    for column in ("epsilon", "mean accuracy", "pooled AUC", "log loss", "membership AUC", "DP ceiling",
                   "FLamby DP-FedAvg"):
        table.add_column(column, justify="right")
    for epsilon, runs in scores.items():
        table.add_row(f"{epsilon:g}", _mean_sd([s.accuracy for s in runs]), _mean_sd([s.auc for s in runs]),
                      _mean_sd([s.log_loss for s in runs]), _mean_sd([s.membership_auc for s in runs]),
                      f"{dp_auc_ceiling(epsilon, DELTA):.3f}", FLAMBY_DP.get(epsilon, ""))
    console.print(table)
    if 1.0 in scores:
        mean = statistics.fmean(s.accuracy for s in scores[1.0])
        verdict = "meets" if mean >= TARGET else "MISSES"
        console.print(f"epsilon = 1: mean accuracy {mean:.3f} {verdict} the target >= {TARGET:.2f}")
    ratio = overhead["secure"] / overhead["plain"]
    console.print(f"median round in-process: secure {overhead['secure'] * 1000:.1f} ms, plain "
                  f"{overhead['plain'] * 1000:.1f} ms, ratio {ratio:.2f} (target <= 2 and under 1 s)")
    return scores
