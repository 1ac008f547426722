"""Centralised comparison models on the bundled public data: pooled and local-only training.

Only possible because Fed-Heart-Disease is public; a real deployment never pools rows. Both use the
federated run's optimiser settings and the same total number of SGD steps as the whole federation
(pooled) or as one node (local), so the comparison is about where the data is, not about tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsante.data.cohort import Cohort
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.learning.logistic import Params, SGDConfig, init_params, predict_proba, sgd
from fedsante.learning.scaling import Moments, Scaler, combine, local_scaler
from fedsante.reports.metrics import accuracy, roc_auc

EXACT = LogRegParams(privacy="none", scaling="global", local_steps=100, lr=0.02, batch_size=8, l2=1.0)
"""Without differential privacy (the comparison with FLamby's non-DP results): SGD settings tuned for it."""


@dataclass(frozen=True)
class Trained:
    """A model and the scaler it was trained with (used at test time in the 'global' protocol)."""

    params: Params
    scaler: Scaler


def _config(params: LogRegParams, steps: int) -> SGDConfig:
    return SGDConfig(steps=steps, lr=params.lr, batch_size=params.batch_size, l2=params.l2)


def fit_pooled(tables: dict[str, Cohort], params: LogRegParams, *, seed: int) -> Trained:
    """Train on the stacked training rows of every hospital, standardised with pooled statistics."""
    X = np.vstack([t.part("train")[0] for t in tables.values()])
    y = np.concatenate([t.part("train")[1] for t in tables.values()])
    scaler = combine([Moments.of(X)])
    steps = params.rounds * params.local_steps * len(tables)
    return Trained(sgd(init_params(X.shape[1]), scaler.transform(X), y, _config(params, steps), seed=seed), scaler)


def fit_local(table: Cohort, params: LogRegParams, *, seed: int) -> Trained:
    """Train on one hospital's training rows only, standardised with its own statistics."""
    X, y = table.part("train")
    scaler = local_scaler(X)
    steps = params.rounds * params.local_steps
    return Trained(sgd(init_params(X.shape[1]), scaler.transform(X), y, _config(params, steps), seed=seed), scaler)


def evaluate(model: Params, tables: dict[str, Cohort], scalers: dict[str, Scaler]) -> dict[str, dict]:
    """Accuracy, AUC and n on each hospital's test rows, each scaled with ``scalers[hospital]``."""
    out = {}
    for name, table in tables.items():
        X, y = table.part("test")
        proba = predict_proba(model, scalers[name].transform(X))
        auc = roc_auc(y, proba)
        out[name] = {"n": float(len(y)), "accuracy": accuracy(y, proba), "auc": None if np.isnan(auc) else auc}
    return out


def evaluation_scalers(tables: dict[str, Cohort], trained: Trained | Scaler | None, scaling: str) -> dict[str, Scaler]:
    """How each hospital's test rows are scaled: its own training statistics ('local', FLamby's
    protocol) or the scaler the model was trained with ('global')."""
    if scaling == "local" or trained is None:
        return {name: local_scaler(t.part("train")[0]) for name, t in tables.items()}
    scaler = trained.scaler if isinstance(trained, Trained) else trained
    return {name: scaler for name in tables}
