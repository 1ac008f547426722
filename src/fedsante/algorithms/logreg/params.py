"""Parameters of each catalogue algorithm: declared once, with defaults, bounds and help."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from fedsante.algorithms.base import AlgorithmParams

if TYPE_CHECKING:
    from fedsante.privacy.accountant import PrivacyPlan


DERIVED = ("noise_multiplier", "stats_noise_multiplier", "evaluation_noise_multiplier", "noise_shares")
"""Parameters the desk sets when a run starts, from the approval's privacy budget and the run's nodes;
every node recomputes what they spend (:func:`fedsante.node.guard.privacy_problem`)."""


class LogRegParams(AlgorithmParams):
    """Federated logistic regression. Defaults are tuned for DP at epsilon = 1 on Fed-Heart-Disease.

    Differential privacy is on by default (``privacy='record'``): the noise multipliers left unset
    are set by the desk when a run starts so that the run spends the approval's epsilon, and each
    node recomputes what the run spends before it accepts any task (docs/privacy.md).
    """

    DERIVED: ClassVar[tuple[str, ...]] = DERIVED

    rounds: int = Field(15, ge=1, le=1000, description="Number of FedAvg rounds.")
    local_steps: int = Field(10, ge=1, le=100_000, description="SGD steps at each node per round.")
    lr: float = Field(0.1, gt=0, le=10, description="Local SGD learning rate.")
    batch_size: int = Field(8, ge=0, le=100_000,
                            description="Mini-batch size without DP (privacy='none'); 0 means full batch.")
    l2: float = Field(0.0, ge=0, le=1000, description="L2 penalty on the coefficients.")
    server_lr: float = Field(1.0, gt=0, le=10, description="Server step applied to the averaged update.")
    strategy: Literal["fedavg", "fedprox"] = Field(
        "fedavg", description="How the desk combines the summed updates: 'fedavg' (McMahan et al. 2017) or 'fedprox' "
                              "(Li et al. 2020: local training also minimises proximal_mu/2 * ||w - w_global||^2).")
    proximal_mu: float = Field(0.01, ge=0, le=100, description="FedProx: weight of the proximal term (strategy "
                                                               "'fedprox' only).")
    scaling: Literal["bounds", "global", "local"] = Field(
        "bounds",
        description="'bounds': public clinical ranges, no release; 'global': federated means and variances "
                    "(noised under DP); 'local': each node its own (FLamby protocol, not allowed under DP).",
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed of every node's sampler without DP (privacy='none').")
    privacy: Literal["record", "client", "none"] = Field(
        "record",
        description="'record': DP-SGD at each node (each patient protected); 'client': client-level DP-FedAvg "
                    "(each hospital protected, for many hospitals); 'none': exact, refused by nodes by default.",
    )
    sampling_rate: float = Field(0.1, gt=0, le=1, description="DP-SGD: chance that a row joins each step's batch.")
    clip_norm: float = Field(1.0, gt=0, le=1e6, description="DP: L2 bound of each row's gradient (record) or of "
                                                             "each node's update (client).")
    noise_multiplier: float | None = Field(
        None, ge=0, le=1e4, description="DP: training noise over clip_norm; unset = set from the approved epsilon.")
    stats_noise_multiplier: float | None = Field(
        None, ge=0, le=1e4, description="DP: noise of the statistics on training rows (moments, membership check).")
    evaluation_noise_multiplier: float | None = Field(
        None, ge=0, le=1e4, description="DP: noise of the evaluation counts on test rows.")
    noise_shares: int | None = Field(
        None, ge=1, le=10_000, description="Client-level DP: nodes that share the noise (the secure aggregation "
                                           "threshold); unset = set by the desk.")
    stats_fraction: float = Field(0.1, gt=0, lt=1, description="DP: share of epsilon for statistics on training rows.")
    membership_check: bool = Field(True, description="Run the loss-threshold membership-inference check at the end.")
    fairness_attributes: str = Field(
        "*", max_length=300, pattern=r"^(\*|[a-z0-9_, ]*)$",
        description="Fairness attributes of the study whose subgroup statistics are summed over the hospitals by "
                    "secure aggregation (trust report), comma-separated names; '*' for every one the study "
                    "declares; '' for none.")

    @model_validator(mode="after")
    def _private_scaling(self) -> LogRegParams:
        if self.privacy != "none" and self.scaling == "local":
            raise ValueError("scaling 'local' is not differentially private (each row's standardisation depends on "
                             "every other row); use 'bounds' or 'global' with privacy 'record' or 'client'")
        return self

    @field_validator("fairness_attributes")
    @classmethod
    def _known_attributes(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if len(set(names)) != len(names):
            raise ValueError(f"fairness_attributes names an attribute twice: {names}")
        return ",".join(names)

    @property
    def attribute_names(self) -> list[str]:
        """The fairness attributes, in order (``['*']``: every attribute of the study)."""
        return [name for name in self.fairness_attributes.split(",") if name]

    @property
    def dp(self) -> bool:
        return self.privacy != "none"

    @property
    def mu(self) -> float:
        """The proximal weight local training uses: ``proximal_mu`` under FedProx, else 0."""
        return self.proximal_mu if self.strategy == "fedprox" else 0.0

    @property
    def mechanism(self) -> str:
        return self.privacy

    def for_run(self, *, epsilon: float | None, delta: float | None, n_nodes: int) -> LogRegParams:
        """Client-level updates and subgroup sums share their noise among the secure-aggregation threshold of
        nodes; the noise multipliers left unset spend the approval's epsilon (:meth:`within_budget`)."""
        if not self.dp:
            return self
        params = self if self.noise_shares is not None else self.model_copy(update={"noise_shares": n_nodes // 2 + 1})
        return params.within_budget(epsilon, delta)

    @property
    def calibrated(self) -> bool:
        return None not in (self.noise_multiplier, self.stats_noise_multiplier, self.evaluation_noise_multiplier)

    def privacy_plan(self) -> PrivacyPlan:
        """Every release this run makes at one node (unset noise multipliers count as 0, i.e. no privacy)."""
        from fedsante.privacy.accountant import PrivacyPlan

        return PrivacyPlan(
            rounds=self.rounds, local_steps=self.local_steps, sampling_rate=self.sampling_rate,
            noise_multiplier=self.noise_multiplier or 0.0, stats_noise_multiplier=self.stats_noise_multiplier or 0.0,
            moments_releases=int(self.scaling == "global"), membership_releases=int(self.membership_check),
            evaluation_noise_multiplier=self.evaluation_noise_multiplier or 0.0,
            evaluation_releases=1 + bool(self.attribute_names),  # the hospital's statistics, then the subgroups
            level=self.privacy if self.dp else "record",
        )

    def within_budget(self, epsilon: float, delta: float) -> LogRegParams:
        """These parameters with unset noise multipliers set to spend ``epsilon`` at ``delta``, checked.

        Raises :class:`~fedsante.privacy.accountant.BudgetExceeded` (with the numbers) when the run
        would spend more, and :class:`~fedsante.common.errors.ConfigError` when no noise can bring it there.
        """
        if not self.dp:
            return self
        plan = self.privacy_plan()
        if not self.calibrated:
            tuned = _calibrated(plan, epsilon, delta, self.stats_fraction)
            chosen = {"noise_multiplier": tuned.noise_multiplier,
                      "stats_noise_multiplier": tuned.stats_noise_multiplier,
                      "evaluation_noise_multiplier": tuned.evaluation_noise_multiplier}
            params = self.model_copy(update={k: v for k, v in chosen.items() if getattr(self, k) is None})
            plan = params.privacy_plan()
        else:
            params = self
        plan.check(epsilon, delta)
        return params


@lru_cache(maxsize=64)
def _calibrated(plan: PrivacyPlan, epsilon: float, delta: float, fraction: float) -> PrivacyPlan:
    from fedsante.privacy.accountant import calibrate_sigma

    return calibrate_sigma(plan, epsilon, delta, stats_fraction=fraction)
