"""Logistic regression as pure functions on numpy arrays (no I/O, no global RNG).

Parameters are a dict ``{"coef": (d,), "intercept": (1,)}`` so that strategies can average them
key by key. :class:`LogisticRegression` wraps the same functions in the scikit-learn contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Params = dict[str, np.ndarray]


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


@dataclass(frozen=True)
class SGDConfig:
    """Local training settings of one node for one round (or one local-only fit).

    ``batch_size=0`` means full batch.
    """

    steps: int = 100
    lr: float = 0.1
    batch_size: int = 0
    l2: float = 0.0

    def __post_init__(self) -> None:
        for name, low in (("steps", 1), ("batch_size", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"The {name!r} parameter of SGDConfig must be an int >= {low}. Got {value!r} instead.")
        for name in ("lr", "l2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"The {name!r} parameter of SGDConfig must be a float > 0 (l2 >= 0). Got {value!r} instead.")


def sgd(params: Params, X: np.ndarray, y: np.ndarray, config: SGDConfig, *, seed: int) -> Params:
    """Run ``config.steps`` plain SGD steps from ``params`` and return the new parameters."""
    rng = np.random.default_rng(seed)
    current = {k: v.astype(float, copy=True) for k, v in params.items()}
    n = len(y)
    for _ in range(config.steps):
        if config.batch_size and config.batch_size < n:
            idx = rng.choice(n, size=config.batch_size, replace=False)
            grad = gradient(current, X[idx], y[idx], l2=config.l2)
        else:
            grad = gradient(current, X, y, l2=config.l2)
        for key in current:
            current[key] -= config.lr * grad[key]
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
