"""The typed interface every local model of fedsante implements (pure functions on numpy arrays).

A model is stateless: its parameters travel as a :data:`Params` dict (one array per key) so that
strategies can combine them key by key and secure aggregation can sum them. The methods take the
parameters explicitly, the way :mod:`fedsante.learning.logistic` does, and never touch I/O or a
global random state.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

Params = dict[str, np.ndarray]
"""Model parameters: one float array per named part (for example ``coef`` and ``intercept``)."""

__all__ = ["Model", "Params"]


@runtime_checkable
class Model(Protocol):
    """What local training (SGD, DP-SGD) and evaluation need from a model.

    ``per_example_gradients`` returns, for each key of the parameters, an array whose leading axis
    is the rows of ``X`` (shape ``(n,) + params[key].shape``); its mean over rows is
    ``gradient(params, X, y, l2=0.0)``. DP-SGD clips each row of it, all keys together.
    ``penalized`` names the keys the L2 penalty of ``loss`` and ``gradient`` applies to.
    """

    name: str
    penalized: tuple[str, ...]

    def init_params(self, n_features: int) -> Params:
        """Starting parameters for ``n_features`` inputs."""
        ...

    def predict(self, params: Params, X: np.ndarray) -> np.ndarray:
        """The model's output for each row of ``X`` (a probability for a classifier)."""
        ...

    def loss(self, params: Params, X: np.ndarray, y: np.ndarray, *, l2: float = 0.0) -> float:
        """Mean loss over the rows plus ``l2/2`` times the squared norm of the penalized keys."""
        ...

    def gradient(self, params: Params, X: np.ndarray, y: np.ndarray, *, l2: float = 0.0) -> Params:
        """Gradient of :meth:`loss` with respect to each key of ``params``."""
        ...

    def per_example_gradients(self, params: Params, X: np.ndarray, y: np.ndarray) -> Params:
        """Gradient of each row's loss (no penalty), leading axis = rows."""
        ...
