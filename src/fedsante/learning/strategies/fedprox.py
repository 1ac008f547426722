"""FedProx: FedAvg with a proximal term in each node's local objective (Li et al. 2020)."""

from __future__ import annotations

from fedsante.learning.models import Params
from fedsante.learning.strategies.base import Strategy, check_float, mean_update_step

__all__ = ["FedProx"]


class FedProx(Strategy):
    """FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks").

    Each node minimises its loss plus ``mu/2 * ||w - w_global||^2`` (``proximal_mu`` of
    :class:`fedsante.learning.logistic.SGDConfig` and :class:`fedsante.privacy.dp.DPSGDConfig`),
    which keeps local models near the global one when hospitals differ. The desk aggregates exactly
    like :class:`~fedsante.learning.strategies.FedAvg`, from the summed ``n * (local - global)``
    updates and the summed weights, so it works under secure aggregation unchanged.

    Parameters
    ----------
    mu : float, default=0.01
        Proximal coefficient sent to every node each round; 0 gives FedAvg.
    server_lr : float, default=1.0
        Step applied to the averaged update.

    Examples
    --------
    >>> FedProx(mu=0.1).configure_round(1)
    {'proximal_mu': 0.1}
    """

    name = "fedprox"

    def __init__(self, *, mu: float = 0.01, server_lr: float = 1.0) -> None:
        check_float(mu, name="mu", owner="FedProx", low=0.0, strict=False)
        check_float(server_lr, name="server_lr", owner="FedProx", low=0.0, strict=True)
        self.mu = mu
        self.server_lr = server_lr

    def configure_round(self, round_number: int) -> dict[str, float | int]:
        return {"proximal_mu": float(self.mu)}

    def aggregate_fit(self, params: Params, summed_update: Params, total_weight: float) -> Params:
        return mean_update_step(params, summed_update, total_weight, server_lr=self.server_lr, caller="FedProx")
