"""Differential privacy mechanisms for the models of fedsante (pure numpy, no I/O).

Record-level DP at each node: two datasets are neighbours when one patient (one row) is added or
removed. Each mechanism here is one *Gaussian* release whose noise is ``sigma * sensitivity`` with
``sensitivity`` the L2 sensitivity of the released vector; the accountant
(:mod:`fedsante.privacy.accountant`) turns ``sigma`` (and, for DP-SGD, the sampling rate and the number
of steps) into ``(epsilon, delta)``.

* :func:`dp_sgd`: DP-SGD (Abadi et al. 2016) with Poisson sampling at rate ``q``, per-example
  L2 clipping at ``C`` and ``N(0, (sigma C)^2)`` noise on the summed clipped gradient, divided by the
  expected batch size ``q n``. The model's per-example gradient is passed in as a callable
  (:class:`PerExampleGradients`), so this module does not depend on :mod:`fedsante.learning.logistic`.
  The L2 penalty and the FedProx proximal term are data-independent and are added outside the noisy part.
* :func:`private_moments`: the standardisation statistics, released once each with :func:`gaussian_release`.
* :func:`clip_update` and :func:`distributed_noise`: client-level DP-FedAvg (McMahan et al. 2018),
  where each node clips its update and adds its share of the noise before secure aggregation.

Every function takes its ``numpy.random.Generator``; none reads the global random state.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


Params = dict[str, np.ndarray]

__all__ = [
    "DPSGDConfig", "Params", "PerExampleGradients", "clip_rows", "clip_update", "distributed_noise", "dp_sgd",
    "flatten", "gaussian_release",
    "stack_rows", "unflatten",
]


class PerExampleGradients(Protocol):
    """The model's per-example gradient: for each key of ``params``, one row per row of ``X``.

    Each returned array has shape ``(n,) + params[key].shape``; no penalty term is included.
    ``fedsante.learning.logistic.LOGISTIC.per_example_gradients`` is one.
    """

    def __call__(self, params: Params, X: np.ndarray, y: np.ndarray, /) -> Params: ...


def flatten(params: Params) -> np.ndarray:
    """Parameters as one vector, keys in sorted order (``[coef..., intercept]`` for logistic regression; a copy).

    >>> flatten({"intercept": np.array([3.0]), "coef": np.array([1.0, 2.0])}).tolist()
    [1.0, 2.0, 3.0]
    """
    return np.concatenate([np.asarray(params[k], dtype=float).ravel() for k in sorted(params)])


def unflatten(vector: np.ndarray, like: Params) -> Params:
    """Inverse of :func:`flatten`: the keys and shapes of ``like``, the values of ``vector`` (copies)."""
    out, start = {}, 0
    for key in sorted(like):
        shape = np.shape(like[key])
        size = int(np.prod(shape))
        out[key] = vector[start:start + size].reshape(shape).copy()
        start += size
    if start != len(vector):
        raise ValueError(f"unflatten got a vector of {len(vector)} values for parameters of {start} values.")
    return {k: out[k] for k in like}


def stack_rows(per_example: Params) -> np.ndarray:
    """Per-example gradients as one matrix, shape ``(n, total size)``, keys in the order of :func:`flatten`.

    An empty batch (``n = 0``, possible under Poisson sampling) gives an empty ``(0, total size)`` matrix.

    >>> stack_rows({"intercept": np.zeros((0, 1)), "coef": np.zeros((0, 2))}).shape
    (0, 3)
    """
    blocks = [np.asarray(per_example[k], dtype=float) for k in sorted(per_example)]
    return np.concatenate([b.reshape(b.shape[0], int(np.prod(b.shape[1:]))) for b in blocks], axis=1)


def clip_rows(G: np.ndarray, max_norm: float) -> np.ndarray:
    """Scale each row of ``G`` down to L2 norm at most ``max_norm`` (rows already inside are kept)."""
    norms = np.linalg.norm(G, axis=1, keepdims=True)
    return G * np.minimum(1.0, max_norm / np.maximum(norms, 1e-300))


@dataclass(frozen=True)
class DPSGDConfig:
    """Settings of DP-SGD at one node for one round.

    ``sampling_rate`` is the Poisson rate ``q`` (each row joins each batch independently with
    probability ``q``; ``q = 1`` is full-batch noisy gradient descent), ``clip_norm`` is ``C`` and
    ``noise_multiplier`` is ``sigma``. One round spends ``steps`` subsampled Gaussian mechanisms.
    ``proximal_mu`` is the FedProx coefficient (0: none); like ``l2`` it does not touch the data.
    """

    steps: int = 100
    lr: float = 0.1
    sampling_rate: float = 0.1
    clip_norm: float = 1.0
    noise_multiplier: float = 1.0
    l2: float = 0.0
    proximal_mu: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"The 'steps' parameter of DPSGDConfig must be an int >= 1. Got {self.steps!r} instead.")
        checks = {"lr": self.lr > 0, "sampling_rate": 0 < self.sampling_rate <= 1, "clip_norm": self.clip_norm > 0,
                  "noise_multiplier": self.noise_multiplier >= 0, "l2": self.l2 >= 0,
                  "proximal_mu": self.proximal_mu >= 0}
        for name, ok in checks.items():
            if not ok or not math.isfinite(getattr(self, name)):
                raise ValueError(
                    f"The {name!r} parameter of DPSGDConfig is out of range: lr, clip_norm > 0; 0 < sampling_rate <= 1;"
                    f" noise_multiplier, l2, proximal_mu >= 0. Got {getattr(self, name)!r} instead."
                )


def dp_sgd(per_example_gradients: PerExampleGradients, params: Params, X: np.ndarray, y: np.ndarray,
           config: DPSGDConfig, rng: np.random.Generator, *, n_public: float | None = None,
           anchor: Params | None = None, penalized: Collection[str] = ("coef",)) -> Params:
    """Run ``config.steps`` DP-SGD steps from ``params`` and return the new parameters.

    Each step draws ``mask = rng.random(n) < q`` then ``rng.normal(size=p)`` (``p`` parameters;
    always, even with ``sigma = 0``, so runs are reproducible), clips each row of
    ``per_example_gradients(params, X[mask], y[mask])`` (all keys together, see :func:`stack_rows`)
    and moves by ``lr`` times ``(sum of clipped rows + sigma C N(0, I)) / (q n_public)`` plus
    ``l2 w`` on the ``penalized`` keys plus ``proximal_mu (w - anchor)`` on every key.
    ``n_public`` defaults to ``len(y)``: the row count is then treated as public, as in Opacus; pass
    the count released by :func:`private_moments` to avoid that assumption (floored at ``1 / q``).

    The penalty and the proximal term (FedProx; ``anchor`` defaults to ``params``, the round's global
    model) depend on the parameters only, never on a patient's row, so they are added *after*
    clipping and noising: they are post-processing and leave the privacy accounting unchanged.
    """
    q, C = config.sampling_rate, config.clip_norm
    n = len(y)
    denominator = q * max(float(n if n_public is None else n_public), 1.0 / q)
    theta = flatten(params)
    centre = flatten(params if anchor is None else anchor)
    mask_l2 = np.concatenate([np.full(np.size(params[k]), k in penalized) for k in sorted(params)])
    for _ in range(config.steps):
        mask = rng.random(n) < q
        noise = rng.normal(size=theta.size) * (config.noise_multiplier * C)
        current = unflatten(theta, params)
        summed = clip_rows(stack_rows(per_example_gradients(current, X[mask], y[mask])), C).sum(axis=0)
        step = (summed + noise) / denominator
        step[mask_l2] += config.l2 * theta[mask_l2]
        if config.proximal_mu:
            step += config.proximal_mu * (theta - centre)
        theta -= config.lr * step
    return unflatten(theta, params)


def clip_update(delta: Params, max_norm: float) -> Params:
    """Scale a node's update (all keys together) down to L2 norm at most ``max_norm``.

    >>> clip_update({"coef": np.array([6.0]), "intercept": np.array([8.0])}, 5.0)["coef"].tolist()
    [3.0]
    """
    if not max_norm > 0:
        raise ValueError(f"clip_update needs max_norm > 0. Got {max_norm!r} instead.")
    norm = math.sqrt(sum(float(np.sum(np.square(v))) for v in delta.values()))
    factor = min(1.0, max_norm / norm) if norm > 0 else 1.0
    return {k: np.asarray(v, dtype=float) * factor for k, v in delta.items()}


def distributed_noise(delta: Params, *, max_norm: float, noise_multiplier: float, n_clients: int,
                      rng: np.random.Generator) -> Params:
    """Client-level DP-FedAvg: clip ``delta`` and add this node's share of the Gaussian noise.

    Each node adds ``N(0, (sigma C)^2 / n_clients)`` per coordinate, so the *sum* that secure
    aggregation reveals carries ``N(0, (sigma C)^2)``: one Gaussian mechanism of multiplier ``sigma``
    per round with respect to adding or removing one node's update. Set ``n_clients`` to the secure
    aggregation threshold (the fewest nodes that can survive), because dropped nodes take their noise
    with them. The guarantee is for the real-valued sum and relies on secure aggregation; the 32-bit
    fixed-point rounding of :mod:`fedsante.privacy.quantize` is not covered by it.
    """
    if n_clients < 1 or noise_multiplier < 0:
        raise ValueError(f"distributed_noise needs n_clients >= 1 and noise_multiplier >= 0. "
                         f"Got {n_clients!r} and {noise_multiplier!r}.")
    std = noise_multiplier * max_norm / math.sqrt(n_clients)
    return {k: v + rng.normal(size=np.shape(v)) * std for k, v in clip_update(delta, max_norm).items()}


def gaussian_release(values: np.ndarray, sensitivity: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add ``N(0, (sigma * sensitivity)^2)`` to every entry of ``values``.

    ``sensitivity`` is the L2 sensitivity of the whole vector: the largest L2 norm of the change one
    patient can make to it. The release is the Gaussian mechanism with noise multiplier ``sigma``
    (``GaussianDpEvent(sigma)`` for the accountant). Typical sensitivities, add/remove one patient:
    a count changes by 1; a vector of disjoint counts (a confusion matrix, a histogram) by 1 in L2; a
    sum of values clipped to ``[-b, b]`` by ``b``; a sum of squares by ``b^2``.
    """
    if not sensitivity > 0 or not sigma >= 0:
        raise ValueError(f"gaussian_release needs sensitivity > 0 and sigma >= 0. Got {sensitivity!r}, {sigma!r}.")
    values = np.asarray(values, dtype=float)
    return values + rng.normal(size=values.shape) * (sigma * sensitivity)
