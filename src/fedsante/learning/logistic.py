"""Logistic regression as pure functions on numpy arrays (no I/O, no global RNG).

Parameters are a dict ``{"coef": (d,), "intercept": (1,)}`` so that strategies can average them
key by key. :data:`LOGISTIC` bundles the functions as a :class:`fedsante.learning.models.Model`
(what DP-SGD and the strategies use); :class:`LogisticRegression` wraps them in the scikit-learn
contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fedsante.learning.models import Params

__all__ = [
    "LOGISTIC", "LogisticModel", "LogisticRegression", "Params", "SGDConfig", "decision_function", "gradient",
    "init_params", "log_loss", "per_example_gradients", "predict_proba", "sgd",
]


def init_params(n_features: int) -> Params:
    """Zero-initialised parameters for ``n_features`` inputs."""
    return {"coef": np.zeros(n_features), "intercept": np.zeros(1)}


def decision_function(params: Params, X: np.ndarray) -> np.ndarray:
    """Linear score ``X @ coef + intercept``."""
    return X @ params["coef"] + params["intercept"][0]


def predict_proba(params: Params, X: np.ndarray) -> np.ndarray:
    """Probability of the positive class."""
    z = decision_function(params, X)
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # numerically stable sigmoid


def log_loss(params: Params, X: np.ndarray, y: np.ndarray, *, l2: float = 0.0) -> float:
    """Mean binary cross-entropy plus ``l2/2 * ||coef||^2``."""
    z = decision_function(params, X)
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    return float(loss + 0.5 * l2 * params["coef"] @ params["coef"])


def gradient(params: Params, X: np.ndarray, y: np.ndarray, *, l2: float = 0.0) -> Params:
    """Gradient of :func:`log_loss` with respect to each parameter."""
    residual = predict_proba(params, X) - y
    n = max(len(y), 1)
    return {
        "coef": X.T @ residual / n + l2 * params["coef"],
        "intercept": np.array([residual.sum() / n]),
    }


def per_example_gradients(params: Params, X: np.ndarray, y: np.ndarray) -> Params:
    """Gradient of each row's log loss (no penalty): ``coef`` of shape ``(n, d)``, ``intercept`` ``(n, 1)``.

    Row ``i`` is ``(p_i - y_i) x_i`` and ``p_i - y_i``, so the mean over rows is ``gradient(params, X, y)``.

    >>> G = per_example_gradients({"coef": np.zeros(1), "intercept": np.zeros(1)}, np.array([[2.0]]), np.array([1.0]))
    >>> G["coef"].tolist(), G["intercept"].tolist()
    ([[-1.0]], [[-0.5]])
    """
    residual = predict_proba(params, X) - y
    return {"coef": residual[:, None] * X, "intercept": residual[:, None].copy()}


class LogisticModel:
    """Binary logistic regression as a :class:`fedsante.learning.models.Model` (stateless).

    The L2 penalty applies to ``coef`` only, never to the intercept.

    >>> LOGISTIC.init_params(2)["coef"].tolist(), LOGISTIC.penalized
    ([0.0, 0.0], ('coef',))
    """

    name = "logistic"
    penalized: tuple[str, ...] = ("coef",)

    def init_params(self, n_features: int) -> Params:
        return init_params(n_features)

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class."""
        return predict_proba(params, X)

    def loss(self, params: Params, X: np.ndarray, y: np.ndarray, *, l2: float = 0.0) -> float:
        return log_loss(params, X, y, l2=l2)

    def gradient(self, params: Params, X: np.ndarray, y: np.ndarray, *, l2: float = 0.0) -> Params:
        return gradient(params, X, y, l2=l2)

    def per_example_gradients(self, params: Params, X: np.ndarray, y: np.ndarray) -> Params:
        return per_example_gradients(params, X, y)


LOGISTIC = LogisticModel()
"""The logistic regression model; pass ``LOGISTIC.per_example_gradients`` to :func:`fedsante.privacy.dp.dp_sgd`."""


@dataclass(frozen=True)
class SGDConfig:
    """Local training settings of one node for one round (or one local-only fit).

    ``batch_size=0`` means full batch. ``proximal_mu`` is the FedProx coefficient ``mu`` (Li et al.
    2020): each step minimises the loss plus ``mu/2 * ||w - w_anchor||^2``, the anchor being the
    round's global model (see :func:`sgd`); ``0`` is plain SGD.
    """

    steps: int = 100
    lr: float = 0.1
    batch_size: int = 0
    l2: float = 0.0
    proximal_mu: float = 0.0

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"The {name!r} parameter of SGDConfig must be an int >= {low}. Got {value!r} instead.")
        for name, bound in (("lr", "> 0"), ("l2", ">= 0"), ("proximal_mu", ">= 0")):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < 0 or (name == "lr" and value == 0):
                raise ValueError(
                    f"The {name!r} parameter of SGDConfig must be a float {bound} and finite. Got {value!r} instead."
                )


def sgd(params: Params, X: np.ndarray, y: np.ndarray, config: SGDConfig, *, seed: int,
        anchor: Params | None = None) -> Params:
    """Run ``config.steps`` SGD steps from ``params`` and return the new parameters.

    With ``config.proximal_mu = mu > 0`` (FedProx), each step's gradient gets ``+ mu * (w - anchor)``
    for *every* key, the intercept included: the proximal term bounds how far the whole local model
    drifts from the global one, and the intercept drifts with the node's own class balance.
    ``anchor`` defaults to ``params`` (the round's global model, where local training starts).

    >>> X, y = np.array([[1.0], [-1.0]]), np.array([1.0, 0.0])
    >>> sgd(init_params(1), X, y, SGDConfig(steps=1, lr=1.0), seed=0)["coef"].tolist()
    [0.5]
    """
    rng = np.random.default_rng(seed)
    current = {k: v.astype(float, copy=True) for k, v in params.items()}
    anchor = {k: np.asarray(v, dtype=float) for k, v in (params if anchor is None else anchor).items()}
    mu = config.proximal_mu
    n = len(y)
    for _ in range(config.steps):
        if config.batch_size and config.batch_size < n:
            idx = rng.choice(n, size=config.batch_size, replace=False)
            grad = gradient(current, X[idx], y[idx], l2=config.l2)
        else:
            grad = gradient(current, X, y, l2=config.l2)
        for key in current:
            step = grad[key] + mu * (current[key] - anchor[key]) if mu else grad[key]
            current[key] -= config.lr * step
    return current


class LogisticRegression:
    """Binary logistic regression trained by SGD, in the scikit-learn contract.

    Parameters
    ----------
    config : SGDConfig, default=SGDConfig()
        Number of steps, learning rate, batch size and L2 penalty.
    seed : int, default=0
        Seed of the mini-batch sampler.

    Examples
    --------
    >>> X = np.array([[-1.0], [-0.5], [0.5], [1.0]]); y = np.array([0.0, 0.0, 1.0, 1.0])
    >>> LogisticRegression(config=SGDConfig(steps=200, lr=1.0)).fit(X, y).predict(X).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """

    def __init__(self, *, config: SGDConfig = SGDConfig(), seed: int = 0) -> None:
        self.config = config
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
        self.params_ = sgd(init_params(X.shape[1]), X, y, self.config, seed=self.seed)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "params_"):
            raise RuntimeError(
                "This LogisticRegression instance is not fitted yet. Call 'fit' with appropriate arguments first."
            )
        return predict_proba(self.params_, X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X) >= 0.5).astype(float)
