"""The strategy ABC and the pure helpers every strategy shares.

Nodes send ``n * (local - global)`` and ``n``; the desk needs only the *sums* of those, which is
exactly what secure aggregation reveals. Every strategy therefore aggregates a summed update and a
summed weight, never one node's update.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from fedsante.learning.models import Params

__all__ = ["Strategy", "check_float", "mean_update_step", "sum_params", "weighted_delta"]


def weighted_delta(local: Params, global_: Params, weight: float) -> Params:
    """What a node sends after local training: ``weight * (local - global)``.

    >>> weighted_delta({"w": np.array([3.0])}, {"w": np.array([1.0])}, 2.0)["w"].tolist()
    [4.0]
    """
    return {k: weight * (local[k] - global_[k]) for k in global_}


def sum_params(parts: Sequence[Params]) -> Params:
    """Key-wise sum of parameter dicts that share keys and shapes (what secure aggregation reveals)."""
    if not parts:
        raise ValueError("sum_params needs at least one parameter dict. Got none.")
    keys = parts[0].keys()
    for i, part in enumerate(parts[1:], start=1):
        if part.keys() != keys:
            raise ValueError(f"Parameter dict {i} has keys {sorted(part)}, expected {sorted(keys)}.")
    return {k: np.sum([p[k] for p in parts], axis=0) for k in keys}


def mean_update_step(params: Params, summed_update: Params, total_weight: float, *, server_lr: float,
                     caller: str) -> Params:
    """``params + server_lr * summed_update / total_weight``: a step along the weighted mean update.

    With ``server_lr = 1`` and updates ``n_i (local_i - global)`` this is the weighted average of the
    local models. ``caller`` names the strategy in the error raised for a non-positive weight.

    >>> mean_update_step({"w": np.array([1.0])}, {"w": np.array([4.0])}, 2.0, server_lr=0.5, caller="FedAvg")["w"]
    array([2.])
    """
    if not total_weight > 0:
        raise ValueError(f"{caller} needs a positive total weight. Got {total_weight!r}.")
    return {k: params[k] + server_lr * summed_update[k] / total_weight for k in params}


def check_float(value: object, *, name: str, owner: str, low: float, strict: bool) -> float:
    """``value`` as a float if it is a finite number above ``low`` (``>`` if ``strict``, else ``>=``).

    >>> check_float(-1, name="mu", owner="FedProx", low=0.0, strict=False)
    Traceback (most recent call last):
    ValueError: The 'mu' parameter of FedProx must be a float >= 0. Got -1 instead.
    """
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or value < low or (strict and value == low):  # type: ignore[operator]
        bound = f"{'>' if strict else '>='} {low:g}"
        raise ValueError(f"The {name!r} parameter of {owner} must be a float {bound}. Got {value!r} instead.")
    return float(value)  # type: ignore[arg-type]


class Strategy(ABC):
    """How the desk turns the summed node updates of one round into the next global model.

    Subclasses take keyword-only settings, validate them and store them unchanged.
    """

    name: str

    @abstractmethod
    def configure_round(self, round_number: int) -> dict[str, float | int]:
        """Settings sent to every node for this round (merged into the task's parameters)."""

    @abstractmethod
    def aggregate_fit(self, params: Params, summed_update: Params, total_weight: float) -> Params:
        """Next global parameters from the current ones and the round's summed weighted update."""
