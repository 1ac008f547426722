"""What a node computes for each kind of task, on its own table. Only aggregates come out.

Under differential privacy (``privacy`` 'record' or 'client', the default) every output is a noisy
release whose noise multiplier the task names and the node has checked against the approval
(:mod:`fedsante.node.agent`); the noise comes from the operating system's entropy, never from a
seed the desk knows. With ``privacy='none'`` (refused by nodes unless their policy allows it) the
outputs are exact and the sampler is seeded, for reproducible benchmarks.
"""

from __future__ import annotations

import math
import zlib

from typing import Any

import numpy as np

from fedsante.common.errors import BadRequest
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.learning.logistic import LOGISTIC, Params, SGDConfig, predict_proba, sgd
from fedsante.learning.scaling import Moments, Scaler, local_scaler
from fedsante.learning.strategies import weighted_delta
from fedsante.algorithms.logreg.evaluation import (IMPORTANCE, STATS, SUBGROUPS, evaluation_arrays, importance, noisy_share,
                                      release_sensitivity, subgroup_matrix)
from fedsante.learning.private_scaling import private_moments, range_scaler
from fedsante.privacy.dp import DPSGDConfig, distributed_noise, dp_sgd
from fedsante.privacy.membership import auc_sensitivity, log_losses, loss_threshold_auc, private_membership_auc
from fedsante.reports.metrics import roc_auc
from fedsante.reports.performance import GroupStats, group_stats, summary

Arrays = dict[str, np.ndarray]


def execute(kind: str, params: dict, arrays: Arrays, table: Any, *, node_id: str,
            round_number: int) -> tuple[Arrays, dict[str, float | None]]:
    """Run one task and return ``(arrays, metrics)`` to send back."""
    settings = LogRegParams.model_validate(params)
    if settings.dp and not settings.calibrated:
        raise BadRequest("The task asks for differential privacy without its noise multipliers; the desk sets them "
                         "when the run starts.")
    rng = np.random.default_rng() if settings.dp else None
    lower, upper = table.bounds
    X_train, y_train = table.part("train")
    if settings.dp or settings.scaling == "bounds":
        X_train = np.clip(X_train, lower, upper)
    n = float(len(y_train))
    if kind == "moments":
        m = (private_moments(X_train, lower, upper, settings.stats_noise_multiplier, rng) if settings.dp
             else Moments.of(X_train))
        return {"n": np.array([float(m.n)]), "total": m.total, "total_sq": m.total_sq}, {"n": n}
    scaler = _scaler(settings, arrays, X_train, table)
    model = {"coef": _need(arrays, "coef"), "intercept": _need(arrays, "intercept")}
    if kind == "fit":
        return _fit(settings, model, scaler.transform(X_train), y_train, rng, node_id, round_number)
    if kind == "evaluate":
        train = scaler.transform(X_train), y_train
        return _evaluate(settings, model, scaler, table, train, rng, node_id)
    if kind == "subgroups":
        return _subgroups(settings, model, scaler, table, rng)
    raise BadRequest(f"Unknown task kind {kind!r}; this node runs 'moments', 'fit', 'evaluate' and 'subgroups'.")


def _test_predictions(settings: LogRegParams, model: Params, scaler: Scaler,
                      table: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(X in original units, X as the model sees it, y, predicted probability)`` of the test rows."""
    X_raw, y_test = table.part("test")
    X_test = scaler.transform(np.clip(X_raw, *table.bounds) if settings.dp else X_raw)
    return X_raw, X_test, y_test, predict_proba(model, X_test)


def _evaluate(settings: LogRegParams, model: Params, scaler: Scaler, table: Any,
              train: tuple[np.ndarray, np.ndarray], rng: np.random.Generator | None,
              node_id: str) -> tuple[Arrays, dict[str, float | None]]:
    """Performance of the final model on the test rows (:mod:`fedsante.algorithms.logreg.evaluation`)."""
    _, X_test, y_test, proba = _test_predictions(settings, model, scaler, table)
    sigma = settings.evaluation_noise_multiplier if settings.dp else None
    arrays = evaluation_arrays(group_stats(y_test, proba), sigma, rng)
    released = GroupStats.from_vector(arrays[STATS])
    metrics = {**summary(released), "n": float(len(y_test))}  # row counts are public
    metrics["n_positive"] = float(min(max(round(metrics["n_positive"]), 0), len(y_test)))
    if settings.dp:
        metrics["noise_sd"] = sigma * release_sensitivity(0)  # on each count it released
    else:
        metrics["auc"] = roc_auc(y_test, proba)  # exact, from the predictions
        arrays[IMPORTANCE] = importance(model, X_test, y_test, settings.seed * 1_000_003 + zlib.crc32(node_id.encode()))
    if settings.membership_check:
        metrics.update(_membership(settings, model, *train, y_test, proba, rng))
    return arrays, {key: _finite(value) for key, value in metrics.items()}


def _subgroups(settings: LogRegParams, model: Params, scaler: Scaler, table: Any,
               rng: np.random.Generator | None) -> tuple[Arrays, dict[str, float]]:
    """Statistics per subgroup, for secure aggregation only: exact, or noisy counts with this node's noise share."""
    _, _, y_test, proba = _test_predictions(settings, model, scaler, table)
    attributes = chosen_attributes(settings, table)
    if not attributes:
        raise BadRequest("The task asks for subgroup statistics, but the study names no fairness attribute.")
    test = np.asarray(table.split) == "test"
    matrix = subgroup_matrix({name: table.groups[name][test] for name, _ in attributes}, attributes, y_test, proba)
    if settings.dp:
        matrix = noisy_share(matrix, len(attributes), settings.evaluation_noise_multiplier, settings.noise_shares or 1,
                             rng)
    return {SUBGROUPS: matrix}, {"n": float(len(y_test))}


def chosen_attributes(settings: LogRegParams, table: Any) -> list[tuple[str, int]]:
    """The study's fairness attributes the run analyses (name, number of groups), in the study's order."""
    declared = list(getattr(table, "attribute_groups", ()))
    names = settings.attribute_names
    if names == ["*"]:
        return declared
    known = dict(declared)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadRequest(f"fairness attribute(s) {', '.join(unknown)} are not declared by the study "
                         f"(declared: {', '.join(known) or 'none'})")
    return [(name, known[name]) for name in names]


def _fit(settings: LogRegParams, model: Params, X: np.ndarray, y: np.ndarray, rng: np.random.Generator | None,
         node_id: str, round_number: int) -> tuple[Arrays, dict[str, float]]:
    """One round of local training: DP-SGD, SGD then client-level noise, or plain SGD."""
    n = float(len(y))
    if settings.privacy == "record":
        config = DPSGDConfig(steps=settings.local_steps, lr=settings.lr, sampling_rate=settings.sampling_rate,
                             clip_norm=settings.clip_norm, noise_multiplier=settings.noise_multiplier, l2=settings.l2,
                             proximal_mu=settings.mu)
        return weighted_delta(dp_sgd(LOGISTIC.per_example_gradients, model, X, y, config, rng), model, n), {"n": n}
    config = SGDConfig(steps=settings.local_steps, lr=settings.lr, batch_size=settings.batch_size, l2=settings.l2,
                       proximal_mu=settings.mu)
    seed = settings.seed * 1_000_003 + round_number * 7919 + zlib.crc32(node_id.encode())
    local = sgd(model, X, y, config, seed=seed if rng is None else int(rng.integers(2**63)))
    if settings.privacy == "client":  # every hospital counts once: weight 1, update clipped and noised
        delta = weighted_delta(local, model, 1.0)
        noisy = distributed_noise(delta, max_norm=settings.clip_norm, noise_multiplier=settings.noise_multiplier,
                                  n_clients=settings.noise_shares or 1, rng=rng)
        return noisy, {"n": 1.0}
    return weighted_delta(local, model, n), {"n": n}


def _membership(settings: LogRegParams, model: Params, X_train: np.ndarray, y_train: np.ndarray, y_test: np.ndarray,
                proba_test: np.ndarray, rng: np.random.Generator | None) -> dict[str, float]:
    """The loss-threshold membership-inference AUC, training rows against test rows (noised under DP)."""
    members = log_losses(y_train, predict_proba(model, X_train))
    others = log_losses(y_test, proba_test)
    if rng is None:
        return {"membership_auc": loss_threshold_auc(members, others)}
    sigma = settings.stats_noise_multiplier
    return {"membership_auc": private_membership_auc(members, others, sigma, rng),
            "membership_noise_sd": sigma * auc_sensitivity(len(members), len(others))}


def _finite(value: float | None) -> float | None:
    """NaN (e.g. AUC on a test set with one class) travels as None."""
    return None if value is None or math.isnan(value) else value


def _scaler(settings: LogRegParams, arrays: Arrays, X_train: np.ndarray, table: Any) -> Scaler:
    if settings.scaling == "global":
        return Scaler(mean=_need(arrays, "mean"), scale=_need(arrays, "scale"))
    if settings.scaling == "bounds":
        return range_scaler(*table.bounds)
    return local_scaler(X_train)


def _need(arrays: Arrays, key: str) -> np.ndarray:
    if key not in arrays:
        raise BadRequest(f"Task lacks the array {key!r}; the desk must send it.")
    return arrays[key]
