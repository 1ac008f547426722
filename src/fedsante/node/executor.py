"""What a node computes for each kind of task, on its own table. Only aggregates come out."""

from __future__ import annotations

import math
import zlib

import numpy as np

from fedsante.data.heart import HospitalTable
from fedsante.errors import BadRequest
from fedsante.federation.params import LogRegParams
from fedsante.learning.logistic import SGDConfig, predict_proba, sgd
from fedsante.learning.scaling import Moments, Scaler, local_scaler
from fedsante.learning.strategy import weighted_delta
from fedsante.reports.metrics import accuracy, roc_auc

Arrays = dict[str, np.ndarray]


def execute(kind: str, params: dict, arrays: Arrays, table: HospitalTable, *, node_id: str, round_number: int) -> tuple[Arrays, dict[str, float | None]]:
    """Run one task and return ``(arrays, metrics)`` to send back."""
    settings = LogRegParams.model_validate(params)
    X_train, y_train = table.part("train")
    if kind == "moments":
        m = Moments.of(X_train)
        return {"n": np.array([float(m.n)]), "total": m.total, "total_sq": m.total_sq}, {"n": float(m.n)}
    scaler = _scaler(settings.scaling, arrays, X_train)
    model = {"coef": _need(arrays, "coef"), "intercept": _need(arrays, "intercept")}
    if kind == "fit":
        config = SGDConfig(steps=settings.local_steps, lr=settings.lr, batch_size=settings.batch_size, l2=settings.l2)
        seed = settings.seed * 1_000_003 + round_number * 7919 + zlib.crc32(node_id.encode())
        local = sgd(model, scaler.transform(X_train), y_train, config, seed=seed)
        n = float(len(y_train))
        return weighted_delta(local, model, n), {"n": n}
    if kind == "evaluate":
        X_test, y_test = table.part("test")
        proba = predict_proba(model, scaler.transform(X_test))
        return {}, {
            "n": float(len(y_test)),
            "n_positive": float(np.sum(y_test == 1)),
            "accuracy": _finite(accuracy(y_test, proba)),
            "auc": _finite(roc_auc(y_test, proba)),
        }
    raise BadRequest(f"Unknown task kind {kind!r}; this node runs 'moments', 'fit' and 'evaluate'.")


def _finite(value: float) -> float | None:
    """NaN (e.g. AUC on a test set with one class) travels as None."""
    return None if math.isnan(value) else value


def _scaler(scaling: str, arrays: Arrays, X_train: np.ndarray) -> Scaler:
    if scaling == "global":
        return Scaler(mean=_need(arrays, "mean"), scale=_need(arrays, "scale"))
    return local_scaler(X_train)


def _need(arrays: Arrays, key: str) -> np.ndarray:
    if key not in arrays:
        raise BadRequest(f"Task lacks the array {key!r}; the desk must send it.")
    return arrays[key]
