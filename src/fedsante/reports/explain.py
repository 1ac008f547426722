"""Global explanation of the federated logistic regression (pure functions, no I/O).

Per-patient attributions are computed at a node and never leave it: only d-vectors summed or averaged
over the node's rows do (:func:`abs_deviation_sums`, :func:`permutation_importance`), and the desk
combines them (:func:`federated_mean_abs_attribution`, :func:`aggregate_importance`). Inputs are in the
model's standardised space (``Scaler.transform``) unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedsante.learning.logistic import Params, log_loss
from fedsante.reports.metrics import roc_auc

__all__ = ["abs_deviation_sums", "aggregate_importance", "federated_mean_abs_attribution", "linear_attributions",
           "mean_abs_attribution", "odds_ratios", "permutation_importance", "ranking"]


def _coef(params: Params) -> np.ndarray:
    coef = np.asarray(params["coef"], dtype=float)
    if coef.ndim != 1 or coef.size == 0:
        raise ValueError(f"params['coef'] must be a non-empty 1-D array. Got shape {coef.shape}.")
    return coef


def _vector(value: np.ndarray, d: int, name: str) -> np.ndarray:
    value = np.asarray(value, dtype=float)
    if value.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), one value per feature of the model. Got shape {value.shape}.")
    return value


def _matrix(X: np.ndarray, d: int, name: str = "X_scaled") -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}), one column per feature of the model. Got shape {X.shape}.")
    return X


def linear_attributions(params: Params, X_scaled: np.ndarray, background_mean: np.ndarray) -> np.ndarray:
    """Exact per-patient attributions in log-odds: ``coef_j * (x_j - background_mean_j)``, shape (n, d).

    These are the SHAP values of a linear model with independent features (``shap.LinearExplainer``): for
    each row they sum to its log-odds minus the log-odds at the background mean. They are per-patient
    values and NEVER leave the node (``assert_aggregate_only`` refuses them); share aggregates instead.

    >>> params = {"coef": np.array([2.0, -1.0]), "intercept": np.array([0.5])}
    >>> from fedsante.learning.logistic import decision_function
    >>> X, mean = np.array([[1.0, 2.0], [0.0, 3.0]]), np.array([0.0, 1.0])
    >>> phi = linear_attributions(params, X, mean)
    >>> phi.tolist()
    [[2.0, -1.0], [0.0, -2.0]]
    >>> (phi.sum(axis=1) + decision_function(params, mean[None])).tolist() == decision_function(params, X).tolist()
    True
    """
    coef = _coef(params)
    X, mean = _matrix(X_scaled, coef.size), _vector(background_mean, coef.size, "background_mean")
    return coef * (X - mean)


def mean_abs_attribution(params: Params, X_scaled: np.ndarray, background_mean: np.ndarray) -> np.ndarray:
    """Mean |attribution| of each feature over the rows, shape (d,): a global importance in log-odds.

    >>> params = {"coef": np.array([2.0, -1.0]), "intercept": np.array([0.5])}
    >>> mean_abs_attribution(params, np.array([[1.0, 1.0], [0.0, 3.0]]), np.array([0.0, 1.0])).tolist()
    [1.0, 1.0]
    """
    X = _matrix(X_scaled, _coef(params).size)
    if X.shape[0] == 0:
        raise ValueError("mean_abs_attribution needs at least one row. Got none.")
    return np.abs(linear_attributions(params, X, background_mean)).mean(axis=0)


def abs_deviation_sums(X_scaled: np.ndarray, background_mean: np.ndarray) -> np.ndarray:
    """The node's share of the federated mean |attribution|: ``sum over rows of |x_j - mean_j|``, shape (d,).

    It does not depend on the model, and with the row count it is all the desk needs, since
    ``|coef_j * (x_j - m_j)| = |coef_j| * |x_j - m_j|``. Every node must use the same ``background_mean``
    (e.g. the federated scaler's, which is 0 in scaled space).

    >>> abs_deviation_sums(np.array([[1.0, 1.0], [0.0, 3.0]]), np.array([0.0, 1.0])).tolist()
    [1.0, 2.0]
    """
    mean = np.asarray(background_mean, dtype=float)
    if mean.ndim != 1 or mean.size == 0:
        raise ValueError(f"background_mean must be a non-empty 1-D array. Got shape {mean.shape}.")
    X = _matrix(X_scaled, mean.size)
    return np.abs(X - mean).sum(axis=0)


def _counts(counts: Sequence[int], k: int, what: str) -> np.ndarray:
    if k == 0:
        raise ValueError(f"{what} needs the values of at least one node. Got an empty list.")
    if len(counts) != k:
        raise ValueError(f"{what} needs one count per node: got {k} nodes and {len(counts)} counts.")
    if any(isinstance(c, bool) or not float(c).is_integer() or c < 1 for c in counts):
        raise ValueError(f"{what}: every count must be a whole number of rows >= 1. Got {list(counts)}.")
    return np.asarray(counts, dtype=float)


def federated_mean_abs_attribution(params: Params, sums: Sequence[np.ndarray], counts: Sequence[int]) -> np.ndarray:
    """Mean |attribution| over all nodes' rows, from each node's :func:`abs_deviation_sums` and row count.

    Equals :func:`mean_abs_attribution` on the concatenated rows (same background mean at every node).

    >>> params = {"coef": np.array([2.0, -1.0]), "intercept": np.array([0.0])}
    >>> federated_mean_abs_attribution(params, [np.array([1.0, 2.0]), np.array([3.0, 0.0])], [2, 2]).tolist()
    [2.0, 0.5]
    """
    coef = _coef(params)
    n = _counts(counts, len(sums), "federated_mean_abs_attribution")
    total = np.sum([_vector(s, coef.size, f"sums[{i}]") for i, s in enumerate(sums)], axis=0)
    return np.abs(coef) * total / n.sum()


def permutation_importance(params: Params, X_scaled: np.ndarray, y: np.ndarray, *, metric: str = "log_loss",
                           repeats: int = 5, rng: np.random.Generator) -> np.ndarray:
    """Mean increase of log loss (or decrease of AUC) when one feature's column is shuffled, shape (d,).

    Run at one node on its test rows; the result is an aggregate (d numbers). A feature the model
    ignores (coef 0) gets exactly 0. Shuffles use ``rng`` only, so a seed makes the result reproducible.

    >>> params = {"coef": np.array([3.0, 0.0]), "intercept": np.array([0.0])}
    >>> X = np.array([[-1.0, 5.0], [-0.5, 1.0], [0.5, 2.0], [1.0, 0.0]]); y = np.array([0.0, 0.0, 1.0, 1.0])
    >>> imp = permutation_importance(params, X, y, rng=np.random.default_rng(0))
    >>> bool(imp[0] > 0), float(imp[1])
    (True, 0.0)
    """
    coef = _coef(params)
    X = _matrix(X_scaled, coef.size)
    y = np.asarray(y, dtype=float)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), one label per row of X_scaled. Got shape {y.shape}.")
    if metric not in ("log_loss", "auc"):
        raise ValueError(f"metric must be 'log_loss' or 'auc'. Got {metric!r}.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1. Got {repeats!r}.")
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)). Got {type(rng).__name__}.")
    if X.shape[0] < 2:
        raise ValueError(f"permutation_importance needs at least 2 rows to shuffle. Got {X.shape[0]}.")

    def score(data: np.ndarray) -> float:
        if metric == "log_loss":
            return log_loss(params, data, y)
        return roc_auc(y, data @ coef)  # the intercept does not change a ranking

    base = score(X)
    if math.isnan(base):
        raise ValueError("metric='auc' needs both outcome classes among the rows. Use metric='log_loss'.")
    sign = 1.0 if metric == "log_loss" else -1.0
    shuffled = X.copy()
    out = np.zeros(coef.size)
    for j in range(coef.size):
        for _ in range(repeats):
            shuffled[:, j] = X[rng.permutation(X.shape[0]), j]
            out[j] += sign * (score(shuffled) - base)
        shuffled[:, j] = X[:, j]
    return out / repeats


def aggregate_importance(values: Sequence[np.ndarray], counts: Sequence[int]) -> np.ndarray:
    """Row-weighted mean of the nodes' importances: ``sum_k n_k * v_k / sum_k n_k``.

    For log loss (a mean over rows) this is exactly the pooled increase with shuffles kept within nodes.

    >>> aggregate_importance([np.array([0.1, 0.0]), np.array([0.4, 0.2])], [30, 10]).round(3).tolist()
    [0.175, 0.05]
    """
    n = _counts(counts, len(values), "aggregate_importance")
    first = np.asarray(values[0], dtype=float)
    if first.ndim != 1 or first.size == 0:
        raise ValueError(f"values[0] must be a non-empty 1-D array. Got shape {first.shape}.")
    stacked = np.stack([_vector(v, first.size, f"values[{i}]") for i, v in enumerate(values)])
    if not np.all(np.isfinite(stacked)):
        raise ValueError("aggregate_importance: every node's importance must be finite (no NaN or inf).")
    return n @ stacked / n.sum()


def odds_ratios(params: Params, scale: np.ndarray) -> dict[str, np.ndarray]:
    """Odds ratio of each feature per one unit of the original feature and per one standard unit.

    ``per_unit = exp(coef_j / scale_j)``, ``per_sd = exp(coef_j)``, for a model fitted on
    ``(x - mean) / scale`` (``scale`` of the :class:`~fedsante.learning.scaling.Scaler`). With the DP
    'bounds' scaling, one "standard unit" is one unit of that scale, not a standard deviation.

    >>> ors = odds_ratios({"coef": np.array([np.log(2.0), 0.0]), "intercept": np.zeros(1)}, np.array([10.0, 1.0]))
    >>> ors["per_sd"].round(6).tolist(), ors["per_unit"].round(6).tolist()
    ([2.0, 1.0], [1.071773, 1.0])
    """
    coef = _coef(params)
    scale = _vector(scale, coef.size, "scale")
    if not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"scale must be finite and > 0 for every feature. Got {scale.tolist()}.")
    return {"per_unit": np.exp(coef / scale), "per_sd": np.exp(coef)}


def ranking(importance: np.ndarray, feature_names: Sequence[str], top: int = 5) -> list[tuple[str, float]]:
    """The ``top`` features by importance, descending (ties keep the feature order).

    >>> ranking(np.array([0.1, 0.5, 0.3]), ["age", "sex", "chol"], top=2)
    [('sex', 0.5), ('chol', 0.3)]
    """
    names = list(feature_names)
    values = np.asarray(importance, dtype=float)
    if values.shape != (len(names),):
        raise ValueError(f"importance must have shape ({len(names)},), one value per feature name. "
                         f"Got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("importance must be finite (no NaN or inf) to be ranked.")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be an int >= 1. Got {top!r}.")
    order = sorted(range(len(names)), key=lambda j: -values[j])
    return [(names[j], float(values[j])) for j in order[:top]]
