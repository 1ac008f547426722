"""Federated strategies: one file each, a registry, and the pure helpers they share.

Every strategy is secure-aggregation compatible: it sees only the sum of the node updates and the
sum of their weights.

>>> make_strategy("fedprox", mu=0.1).configure_round(1)
{'proximal_mu': 0.1}
"""

from __future__ import annotations

import inspect

from fedsante.learning.strategies.base import Strategy, mean_update_step, sum_params, weighted_delta
from fedsante.learning.strategies.fedavg import FedAvg
from fedsante.learning.strategies.fedprox import FedProx

__all__ = ["STRATEGIES", "FedAvg", "FedProx", "Strategy", "make_strategy", "mean_update_step", "sum_params",
           "weighted_delta"]

STRATEGIES: dict[str, type[Strategy]] = {"fedavg": FedAvg, "fedprox": FedProx}
"""Strategies by name (the ``name`` attribute of each class)."""


def make_strategy(name: str, **settings: float) -> Strategy:
    """The strategy called ``name``, built with its keyword ``settings``.

    Raises ``ValueError`` naming the parameter and what it accepts for an unknown name, an unknown
    setting or an out-of-range value.

    >>> make_strategy("fedsgd")
    Traceback (most recent call last):
    ValueError: The 'name' parameter of make_strategy must be one of 'fedavg', 'fedprox'. Got 'fedsgd' instead.
    """
    if name not in STRATEGIES:
        choices = ", ".join(repr(n) for n in STRATEGIES)
        raise ValueError(f"The 'name' parameter of make_strategy must be one of {choices}. Got {name!r} instead.")
    cls = STRATEGIES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(settings) - {p.name for p in accepted})
    if unknown:
        listed = ", ".join(f"{p.name}={p.default!r}" for p in accepted) or "none"
        raise ValueError(f"{cls.__name__} has no parameter {unknown[0]!r}. Its parameters (with defaults) are: "
                         f"{listed}.")
    return cls(**settings)
