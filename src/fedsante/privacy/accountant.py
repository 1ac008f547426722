"""Privacy accounting of one federated run at one node, with Google's ``dp-accounting`` (RDP accountant).

Neighbouring relation: adding or removing one patient at the node (record-level DP). Every release
of the run is one ``DpEvent``:

* the standardisation moments (:func:`fedsante.privacy.dp.private_moments`): ``GaussianDpEvent``;
* DP-SGD, ``rounds * local_steps`` steps: ``SelfComposedDpEvent(PoissonSampledDpEvent(q,
  GaussianDpEvent(sigma)), steps)``; the model updates sent each round are post-processing of them;
* the membership check (:mod:`fedsante.privacy.membership`): ``GaussianDpEvent`` on both sides;
* each evaluation (the statistics of :mod:`fedsante.reports.performance`, released by the node's
  executor): ``GaussianDpEvent``.

Each side's events are composed sequentially in one :class:`dp_accounting.rdp.RdpAccountant` and
converted to ``epsilon`` at ``delta`` once. The training and test rows are disjoint and each patient
has one row (the data loader refuses duplicate patient ids), so the two sides compose in parallel
and the run spends the larger of the two.

Budget split (:func:`calibrate_sigma`): on the training rows, the statistics releases share one noise
multiplier chosen so that they *alone* spend ``stats_fraction`` (default 10%) of the target epsilon at
``delta``, and DP-SGD gets the smallest multiplier for which everything on those rows spends the
target (RDP composes more tightly than adding epsilons, so training effectively gets more than 90%).
The evaluations, on the disjoint test rows, get their own multiplier for the whole target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

import dp_accounting
import numpy as np
from dp_accounting.rdp import RdpAccountant
from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

from fedsante.common.errors import ConfigError, Forbidden

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

    RDP composes by adding curves, so each distinct event's curve is computed once by the library's
    :class:`~dp_accounting.rdp.RdpAccountant` and kept: a node recomputing its run's spending after
    every round pays for the conversion to epsilon only.

    >>> round(epsilon_for([gaussian_event(1.0)], 1e-5), 3)
    4.729
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1). Got {delta!r} instead.")
    rdp = np.zeros(len(ORDERS))
    for event in events:
        rdp = rdp + np.asarray(_rdp_curve(event))
    return float(compute_epsilon(np.asarray(ORDERS), rdp, delta)[0])


@lru_cache(maxsize=1024)
def _rdp_curve(event: DpEvent) -> tuple[float, ...]:
    if isinstance(event, dp_accounting.SelfComposedDpEvent):
        return tuple(event.count * np.asarray(_rdp_curve(event.event)))
    accountant = RdpAccountant(list(ORDERS))
    accountant.compose(event)
    return tuple(accountant._rdp)  # noqa: SLF001  (the library keeps the curve private; version bounded)


@dataclass(frozen=True)
class PrivacyPlan:
    """Every release of one run at one node. Noise multipliers are relative to each release's sensitivity.

    The node's rows are split once into training and test rows, one row per patient, so every patient
    is on one side only and the two sides compose in parallel: the run spends the *larger* of the
    training side's and the test side's epsilon (each side composed with the RDP accountant).

    * training rows: the standardisation moments, DP-SGD (``level="record"``; ``"client"`` is
      client-level DP-FedAvg, one Gaussian on the clipped update per round) and the membership check;
    * test rows: the evaluations and the membership check (it compares both sides, so it counts on both).

    >>> plan = PrivacyPlan(rounds=15, local_steps=100, sampling_rate=0.05, noise_multiplier=2.0,
    ...                    stats_noise_multiplier=30.0, moments_releases=1, evaluation_noise_multiplier=5.0)
    >>> [name for name, _, _ in plan.releases()]
    ['moments', 'dp-sgd', 'evaluation']
    >>> round(plan.epsilon(1e-5), 2)
    5.04
    """

    rounds: int
    local_steps: int
    sampling_rate: float
    noise_multiplier: float = 0.0
    stats_noise_multiplier: float = 0.0
    moments_releases: int = 0
    membership_releases: int = 0
    evaluation_noise_multiplier: float = 0.0
    evaluation_releases: int = 1
    level: str = "record"

    def __post_init__(self) -> None:
        counts = (self.moments_releases, self.membership_releases, self.evaluation_releases)
        if self.rounds < 0 or self.local_steps < 1 or min(counts) < 0:
            raise ValueError(f"PrivacyPlan needs rounds >= 0, local_steps >= 1 and release counts >= 0. Got {self!r}.")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"PrivacyPlan needs 0 < sampling_rate <= 1. Got {self.sampling_rate!r} instead.")
        if self.level not in ("record", "client"):
            raise ValueError(f"PrivacyPlan level must be 'record' or 'client'. Got {self.level!r} instead.")

    @property
    def steps(self) -> int:
        """Noisy training steps of the whole run: ``rounds * local_steps`` (DP-SGD) or ``rounds`` (client-level)."""
        return self.rounds * self.local_steps if self.level == "record" else self.rounds

    def releases(self) -> list[tuple[str, str, DpEvent]]:
        """``(name, rows, event)`` for each kind of release, in the order they happen; rows is train, test or both."""
        out = []
        if self.moments_releases:
            out.append(("moments", "train", gaussian_event(self.stats_noise_multiplier, self.moments_releases)))
        if self.rounds and self.level == "record":
            out.append(("dp-sgd", "train", sgd_event(self.sampling_rate, self.noise_multiplier, self.steps)))
        elif self.rounds:
            out.append(("dp-fedavg", "train", gaussian_event(self.noise_multiplier, self.rounds)))
        if self.evaluation_releases:
            out.append(("evaluation", "test", gaussian_event(self.evaluation_noise_multiplier,
                                                             self.evaluation_releases)))
        if self.membership_releases:
            out.append(("membership check", "both", gaussian_event(self.stats_noise_multiplier,
                                                                   self.membership_releases)))
        return out

    def events(self, rows: str) -> list[DpEvent]:
        """The releases that touch the ``"train"`` or ``"test"`` rows."""
        return [event for _, side, event in self.releases() if side in (rows, "both")]

    def stats_events(self) -> list[DpEvent]:
        """The statistics releases on the training rows (moments and membership check)."""
        return [event for name, side, event in self.releases() if side != "test" and name in STATS]

    def epsilon(self, delta: float) -> float:
        """Epsilon at ``delta`` of the run: the larger of its two sides, each composed."""
        return max(self.side_epsilons(delta).values())

    def side_epsilons(self, delta: float) -> dict[str, float]:
        """Epsilon spent on the training rows and on the test rows."""
        return {rows: _epsilon(tuple(self.events(rows)), delta) for rows in ("train", "test")}

    def ledger(self, delta: float) -> list[dict[str, float | str]]:
        """One line per kind of release with the epsilon it would spend alone, then each side and the run."""
        lines: list[dict[str, float | str]] = [
            {"release": name, "rows": rows, "epsilon_alone": _epsilon((event,), delta), "delta": delta}
            for name, rows, event in self.releases()
        ]
        sides = self.side_epsilons(delta)
        lines += [{"release": f"{rows} rows (composed)", "rows": rows, "epsilon_alone": eps, "delta": delta}
                  for rows, eps in sides.items()]
        lines.append({"release": "run (larger side)", "rows": "all", "epsilon_alone": max(sides.values()),
                      "delta": delta})
        return lines

    def after(self, rounds: int, *, evaluations: int = 0, membership: int = 0) -> PrivacyPlan:
        """The releases made once ``rounds`` rounds (and the given final releases) are done."""
        return replace(self, rounds=min(rounds, self.rounds), evaluation_releases=evaluations,
                       membership_releases=membership)

    def describe(self) -> str:
        training = (f"{self.steps} DP-SGD steps at q={self.sampling_rate:g}" if self.level == "record"
                    else f"{self.rounds} client-level DP-FedAvg rounds")
        return (f"{training}, sigma={self.noise_multiplier:.4g}; {self.moments_releases} moments and "
                f"{self.membership_releases} membership releases at sigma={self.stats_noise_multiplier:.4g}; "
                f"{self.evaluation_releases} evaluation releases at sigma={self.evaluation_noise_multiplier:.4g}")

    def check(self, epsilon: float, delta: float) -> float:
        """Return the epsilon this run spends at ``delta``; raise :class:`BudgetExceeded` above ``epsilon``."""
        spent = self.epsilon(delta)
        if spent > epsilon * (1 + 1e-9):
            raise BudgetExceeded(
                f"This run would spend epsilon={spent:.4g} at delta={delta:g} ({self.describe()}), more than "
                f"the approved epsilon={epsilon:g}. Raise the noise, or lower rounds, local_steps or sampling_rate."
            )
        return spent


STATS = ("moments", "membership check")


@lru_cache(maxsize=4096)
def _epsilon(events: tuple[DpEvent, ...], delta: float) -> float:
    return epsilon_for(events, delta)


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
    """The plan with its noise multipliers set so that the run spends ``target_epsilon`` at ``delta``.

    The noise multipliers of ``plan`` are ignored. On the training rows, the statistics releases
    (moments, membership check) get the multiplier with which they alone spend ``stats_fraction *
    target_epsilon``, and training the smallest multiplier for which everything on those rows spends
    at most ``target_epsilon``. On the test rows, the evaluations get the smallest multiplier for which
    they and the membership check spend at most ``target_epsilon`` (bisection to a relative 1e-5).
    Raises :class:`~fedsante.common.errors.ConfigError` with the numbers when the target is out of reach.
    """
    if not target_epsilon > 0 or not 0 < delta < 1:
        raise ConfigError(f"calibrate_sigma needs target_epsilon > 0 and 0 < delta < 1. "
                          f"Got epsilon={target_epsilon!r}, delta={delta!r}.")
    stats = plan.moments_releases + plan.membership_releases
    if stats and not 0 < stats_fraction < 1:
        raise ConfigError(f"stats_fraction must be in (0, 1). Got {stats_fraction!r} instead.")
    if stats:
        stats_sigma = _smallest_sigma(
            lambda s: _epsilon(tuple(replace(plan, stats_noise_multiplier=s).stats_events()), delta),
            stats_fraction * target_epsilon,
            f"the {stats} statistics releases on the training rows ({stats_fraction:.0%} of the target "
            f"epsilon={target_epsilon:g})",
        )
        plan = replace(plan, stats_noise_multiplier=stats_sigma)
    if plan.rounds:
        training = (f"{plan.steps} DP-SGD steps at q={plan.sampling_rate:g}" if plan.level == "record"
                    else f"{plan.rounds} client-level DP-FedAvg rounds")
        plan = replace(plan, noise_multiplier=_smallest_sigma(
            lambda s: _epsilon(tuple(replace(plan, noise_multiplier=s).events("train")), delta), target_epsilon,
            f"{training} plus the statistics releases"))
    if plan.evaluation_releases:
        plan = replace(plan, evaluation_noise_multiplier=_smallest_sigma(
            lambda s: _epsilon(tuple(replace(plan, evaluation_noise_multiplier=s).events("test")), delta),
            target_epsilon, f"the {plan.evaluation_releases} evaluation releases on the test rows"))
    return plan
