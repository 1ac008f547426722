"""FedAvg: federated averaging (McMahan et al. 2017)."""

from __future__ import annotations

from fedsante.learning.models import Params
from fedsante.learning.strategies.base import Strategy, check_float, mean_update_step

__all__ = ["FedAvg"]


class FedAvg(Strategy):
    """Federated averaging (McMahan et al. 2017), weighted by each node's number of samples.

    Parameters
    ----------
    server_lr : float, default=1.0
        Step applied to the averaged update; 1.0 is plain FedAvg.

    Examples
    --------
    >>> import numpy as np
    >>> FedAvg().aggregate_fit({"w": np.array([1.0])}, {"w": np.array([6.0])}, 3.0)["w"].tolist()
    [3.0]
    """

    name = "fedavg"

    def __init__(self, *, server_lr: float = 1.0) -> None:
        check_float(server_lr, name="server_lr", owner="FedAvg", low=0.0, strict=True)
        self.server_lr = server_lr

    def configure_round(self, round_number: int) -> dict[str, float | int]:
        return {}

    def aggregate_fit(self, params: Params, summed_update: Params, total_weight: float) -> Params:
        return mean_update_step(params, summed_update, total_weight, server_lr=self.server_lr, caller="FedAvg")
