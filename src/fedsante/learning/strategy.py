"""Federated strategies: a small typed ABC and the pure helpers they share.

Nodes send ``n * (local - global)`` and ``n``; the desk needs only the *sums* of those, which is
exactly what secure aggregation reveals. Every strategy therefore aggregates a summed update.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from fedsante.learning.logistic import Params


def weighted_delta(local: Params, global_: Params, weight: float) -> Params:
    """What a node sends after local training: ``weight * (local - global)``."""
    return {k: weight * (local[k] - global_[k]) for k in global_}


def sum_params(parts: Sequence[Params]) -> Params:
    """Key-wise sum of parameter dicts that share keys and shapes."""
    if not parts:
        raise ValueError("sum_params needs at least one parameter dict. Got none.")
    keys = parts[0].keys()
    for i, part in enumerate(parts[1:], start=1):
        if part.keys() != keys:
            raise ValueError(f"Parameter dict {i} has keys {sorted(part)}, expected {sorted(keys)}.")
    return {k: np.sum([p[k] for p in parts], axis=0) for k in keys}


class Strategy(ABC):
    """How the desk turns the summed node updates of one round into the next global model."""

    name: str

    @abstractmethod
    def configure_round(self, round_number: int) -> dict[str, float | int]:
        """Settings sent to every node for this round (merged into the task's parameters)."""

    @abstractmethod
    def aggregate_fit(self, params: Params, summed_update: Params, total_weight: float) -> Params:
        """Next global parameters from the current ones and the round's summed weighted update."""


class FedAvg(Strategy):
    """Federated averaging (McMahan et al. 2017), weighted by each node's number of samples.

    Parameters
    ----------
    server_lr : float, default=1.0
        Step applied to the averaged update; 1.0 is plain FedAvg.
    """

    name = "fedavg"

    def __init__(self, *, server_lr: float = 1.0) -> None:
        if not server_lr > 0:
            raise ValueError(f"The 'server_lr' parameter of FedAvg must be a float > 0. Got {server_lr!r} instead.")
        self.server_lr = server_lr

    def configure_round(self, round_number: int) -> dict[str, float | int]:
        return {}

    def aggregate_fit(self, params: Params, summed_update: Params, total_weight: float) -> Params:
        if total_weight <= 0:
            raise ValueError(f"FedAvg needs a positive total weight. Got {total_weight!r}.")
        return {k: params[k] + self.server_lr * summed_update[k] / total_weight for k in params}
