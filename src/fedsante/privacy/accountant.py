"""Privacy accounting of one federated run at one node, with Google's ``dp-accounting`` (RDP accountant).

Neighbouring relation: adding or removing one patient at the node (record-level DP). Every release
of the run is one ``DpEvent``:

* the standardisation moments (:func:`fedsante.privacy.dp.private_moments`): ``GaussianDpEvent``;
* DP-SGD, ``rounds * local_steps`` steps: ``SelfComposedDpEvent(PoissonSampledDpEvent(q,
  GaussianDpEvent(sigma)), steps)``; the model updates sent each round are post-processing of them;
* each evaluation (:func:`fedsante.privacy.dp.private_confusion`): ``GaussianDpEvent``.

All events are composed sequentially in one :class:`dp_accounting.rdp.RdpAccountant` and converted to
``epsilon`` at ``delta`` once. This is an upper bound even though the training and test rows are
disjoint (parallel composition would allow more); it stays valid if a patient has rows in both.

Budget split (:func:`calibrate_sigma`): the statistics releases share one noise multiplier, chosen so
that they *alone* spend ``stats_fraction`` (default 10%) of the target epsilon at ``delta``; the DP-SGD
multiplier is then the smallest for which the composition of *all* events spends the target.
Because RDP composes more tightly than adding epsilons, training effectively gets more than 90%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import dp_accounting
from dp_accounting.rdp import RdpAccountant

from fedsante.errors import ConfigError, Forbidden

DpEvent = dp_accounting.DpEvent
ORDERS = tuple([1 + x / 10 for x in range(10, 100)] + list(range(11, 64))
               + [80, 96, 128, 192, 256, 384, 512, 768, 1024])
"""RDP orders: the library's default grid from 2 on, plus a few large orders for heavily noised releases.
Below 2 the library's series for the subsampled Gaussian may not converge (it logs a warning and drops
the order); such orders only matter for epsilons far above any approval, and fewer orders can only
make the reported epsilon larger, never smaller."""
MAX_SIGMA = 1e3
"""Largest noise multiplier :func:`calibrate_sigma` tries (one Gaussian release at 1e3 spends 0.004 at delta=1e-5)."""

__all__ = ["MAX_SIGMA", "ORDERS", "BudgetExceeded", "PrivacyPlan", "calibrate_sigma", "epsilon_for", "gaussian_event",
           "sgd_event"]


class BudgetExceeded(Forbidden):
    """A run would spend more privacy than its approval allows; it must not start."""


def sgd_event(sampling_rate: float, noise_multiplier: float, steps: int) -> DpEvent:
    """``steps`` Poisson-subsampled Gaussian mechanisms (DP-SGD; client-level DP-FedAvg with ``q`` = client rate)."""
    if not 0 < sampling_rate <= 1 or steps < 1:
        raise ValueError(f"sgd_event needs 0 < sampling_rate <= 1 and steps >= 1. Got {sampling_rate!r}, {steps!r}.")
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    step = gaussian if sampling_rate == 1 else dp_accounting.PoissonSampledDpEvent(sampling_rate, gaussian)
    return dp_accounting.SelfComposedDpEvent(step, steps)


def gaussian_event(noise_multiplier: float, count: int = 1) -> DpEvent:
    """``count`` Gaussian mechanisms of multiplier ``noise_multiplier`` (statistics releases)."""
    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(noise_multiplier), count)


def epsilon_for(events: Iterable[DpEvent], delta: float) -> float:
    """Epsilon at ``delta`` of the sequential composition of ``events`` (RDP accountant).

    >>> round(epsilon_for([gaussian_event(1.0)], 1e-5), 3)
    4.729
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1). Got {delta!r} instead.")
    accountant = RdpAccountant(list(ORDERS))
    for event in events:
        accountant.compose(event)
    return float(accountant.get_epsilon(delta))


@dataclass(frozen=True)
class PrivacyPlan:
    """Every release of one run at one node. Noise multipliers are relative to each release's sensitivity.

    >>> plan = PrivacyPlan(rounds=15, local_steps=100, sampling_rate=0.05, noise_multiplier=2.0,
    ...                    stats_noise_multiplier=30.0)
    >>> [name for name, _ in plan.releases()]
    ['moments', 'dp-sgd', 'evaluation']
    >>> round(plan.epsilon(1e-5), 2)
    5.04
    """

    rounds: int
    local_steps: int
    sampling_rate: float
    noise_multiplier: float = 0.0
    stats_noise_multiplier: float = 0.0
    moments_releases: int = 1
    evaluation_releases: int = 1

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.local_steps < 1 or self.moments_releases < 0 or self.evaluation_releases < 0:
            raise ValueError(f"PrivacyPlan needs rounds, local_steps >= 1 and release counts >= 0. Got {self!r}.")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"PrivacyPlan needs 0 < sampling_rate <= 1. Got {self.sampling_rate!r} instead.")

    @property
    def steps(self) -> int:
        """DP-SGD steps of the whole run: ``rounds * local_steps``."""
        return self.rounds * self.local_steps

    def releases(self) -> list[tuple[str, DpEvent]]:
        """``(name, event)`` for each kind of release, in the order they happen."""
        out = []
        if self.moments_releases:
            out.append(("moments", gaussian_event(self.stats_noise_multiplier, self.moments_releases)))
        out.append(("dp-sgd", sgd_event(self.sampling_rate, self.noise_multiplier, self.steps)))
        if self.evaluation_releases:
            out.append(("evaluation", gaussian_event(self.stats_noise_multiplier, self.evaluation_releases)))
        return out

    def stats_events(self) -> list[DpEvent]:
        """The statistics releases only (moments and evaluations)."""
        return [event for name, event in self.releases() if name != "dp-sgd"]

    def epsilon(self, delta: float) -> float:
        """Epsilon at ``delta`` of all releases composed."""
        return epsilon_for([event for _, event in self.releases()], delta)

    def ledger(self, delta: float) -> list[dict[str, float | str]]:
        """One line per kind of release with the epsilon it would spend alone, then the composed total."""
        lines: list[dict[str, float | str]] = [
            {"release": name, "epsilon_alone": epsilon_for([event], delta), "delta": delta}
            for name, event in self.releases()
        ]
        lines.append({"release": "total (composed)", "epsilon_alone": self.epsilon(delta), "delta": delta})
        return lines

    def check(self, epsilon: float, delta: float) -> float:
        """Return the epsilon this run spends at ``delta``; raise :class:`BudgetExceeded` above ``epsilon``."""
        spent = self.epsilon(delta)
        if spent > epsilon * (1 + 1e-9):
            raise BudgetExceeded(
                f"This run would spend epsilon={spent:.4g} at delta={delta:g} ({self.steps} DP-SGD steps at "
                f"q={self.sampling_rate:g}, sigma={self.noise_multiplier:g}; {self.moments_releases} moments and "
                f"{self.evaluation_releases} evaluation releases at sigma={self.stats_noise_multiplier:g}), more than "
                f"the approved epsilon={epsilon:g}. Raise the noise, or lower rounds, local_steps or sampling_rate."
            )
        return spent


def _smallest_sigma(epsilon_of: Callable[[float], float], target: float, what: str) -> float:
    """Smallest sigma in ``[1e-3, MAX_SIGMA]`` with ``epsilon_of(sigma) <= target``, by bisection on log sigma."""
    high = 1.0
    while epsilon_of(high) > target:
        if high >= MAX_SIGMA:
            raise ConfigError(
                f"The target epsilon={target:.4g} is not reachable for {what}: even with noise multiplier "
                f"sigma={MAX_SIGMA:g} it spends epsilon={epsilon_of(MAX_SIGMA):.4g}. Lower the number of steps, "
                "releases or the sampling rate, or approve a larger epsilon."
            )
        high = min(high * 4, MAX_SIGMA)
    low = high / 4
    while low > 1e-3 and epsilon_of(low) <= target:
        high, low = low, low / 4
    while high / low > 1 + 1e-5:
        mid = math.sqrt(low * high)
        if epsilon_of(mid) > target:
            low = mid
        else:
            high = mid
    return high


def calibrate_sigma(plan: PrivacyPlan, target_epsilon: float, delta: float, *,
                    stats_fraction: float = 0.1) -> PrivacyPlan:
    """The plan with both noise multipliers set so that all its releases spend ``target_epsilon`` at ``delta``.

    The noise multipliers of ``plan`` are ignored. The statistics releases get the multiplier with which
    they alone spend ``stats_fraction * target_epsilon``; DP-SGD gets the smallest multiplier for which
    the composition of everything spends at most ``target_epsilon`` (bisection to a relative 1e-5).
    Raises :class:`~fedsante.errors.ConfigError` with the numbers when the target is out of reach.
    """
    if not target_epsilon > 0 or not 0 < delta < 1:
        raise ConfigError(f"calibrate_sigma needs target_epsilon > 0 and 0 < delta < 1. "
                          f"Got epsilon={target_epsilon!r}, delta={delta!r}.")
    stats = plan.moments_releases + plan.evaluation_releases
    if stats and not 0 < stats_fraction < 1:
        raise ConfigError(f"stats_fraction must be in (0, 1). Got {stats_fraction!r} instead.")
    stats_sigma = 0.0
    if stats:
        stats_sigma = _smallest_sigma(
            lambda s: epsilon_for(replace(plan, stats_noise_multiplier=s).stats_events(), delta),
            stats_fraction * target_epsilon,
            f"the {stats} statistics releases ({stats_fraction:.0%} of the target epsilon={target_epsilon:g})",
        )
    with_stats = replace(plan, stats_noise_multiplier=stats_sigma)
    sigma = _smallest_sigma(
        lambda s: replace(with_stats, noise_multiplier=s).epsilon(delta), target_epsilon,
        f"{plan.steps} DP-SGD steps at q={plan.sampling_rate:g} plus the statistics releases",
    )
    return replace(with_stats, noise_multiplier=sigma)
