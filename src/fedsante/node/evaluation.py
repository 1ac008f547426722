"""What a node releases about its test patients at the end of a run (pure, no I/O).

- the performance statistics of all its test patients (:class:`~fedsante.reports.performance.GroupStats`);
- the same statistics for each subgroup of the fairness attributes (sex, age bands...). A subgroup with
  1 to k_min - 1 patients, or an outcome class that small, is withheld before any noise is drawn, and
  so is any other subgroup that would give it away by subtraction from the node's total (secondary
  suppression, :func:`~fedsante.privacy.disclosure.protect_subgroups`);
- in exact runs only, the permutation importance of each feature on its test rows. Under differential
  privacy it is not released: a patient's share of a shuffled log loss is too loosely bounded for
  a useful noisy release, and the report explains the model by its exact coefficients instead.

Under differential privacy only the counts leave, as one Gaussian release
(:mod:`fedsante.reports.noise`): a patient adds 1 to one count of the node's block and to one count of
each attribute's block, so the release has L2 sensitivity ``sqrt(1 + attributes)``, the one the
noise multiplier is relative to. The noisy counts are post-processed at the node (made non-negative,
summing to the node's public number of test patients) before they leave.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedsante.learning.logistic import Params
from fedsante.privacy.disclosure import DisclosurePolicy, protect_subgroups
from fedsante.reports.explain import permutation_importance
from fedsante.reports.fairness import Attribute, masks
from fedsante.reports.noise import noisy_counts
from fedsante.reports.performance import GroupStats, group_stats

STATS, SUBGROUPS, RELEASED, IMPORTANCE = "stats", "subgroup_stats", "subgroup_released", "importance"
FIXED = (STATS, SUBGROUPS, RELEASED, IMPORTANCE)
"""Arrays whose length is set by the model and the attributes, never by the number of patients."""
IMPORTANCE_REPEATS = 5


def subgroup_stats(X: np.ndarray, feature_names: Sequence[str], y: np.ndarray, proba: np.ndarray,
                   attributes: Sequence[Attribute], k_min: int) -> list[GroupStats | None]:
    """The statistics of every group of every attribute, in order; None for a withheld group.

    ``X`` holds the test rows in original units. A group is withheld when its count or the count of
    one of its outcome classes is hidden by disclosure control, including by secondary suppression.

    >>> X = np.array([[0.0]] * 30 + [[1.0]] * 5); y = np.array([0, 1] * 15 + [1] * 5)
    >>> sex = Attribute("sex", "sex", (("female", 0, 0.5), ("male", 0.5, 1.01)))
    >>> [g is None for g in subgroup_stats(X, ["sex"], y, np.full(35, 0.4), [sex], 11)]
    [True, True]
    """
    policy = DisclosurePolicy(k_min=k_min)
    y = np.asarray(y)
    out: list[GroupStats | None] = []
    for attribute in attributes:
        groups = masks(X, feature_names, attribute)
        counts = {label: {"n": int(mask.sum()), "n_positive": int(np.sum(y[mask] == 1))}
                  for label, mask in groups.items()}
        shown = protect_subgroups(counts, policy)
        for label, mask in groups.items():
            hidden = shown[label].values["n"] is None or shown[label].values["n_positive"] is None
            out.append(None if hidden else group_stats(y[mask], proba[mask]))
    return out


def release_sensitivity(n_attributes: int) -> float:
    """L2 sensitivity of the counts released under DP: one count of the node's block and one per attribute.

    >>> round(release_sensitivity(2) ** 2, 9)
    3.0
    """
    return math.sqrt(1 + n_attributes)


def evaluation_arrays(site: GroupStats, groups: Sequence[GroupStats | None], n_attributes: int,
                      sigma: float | None, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """The statistics to send: exact, or (``sigma`` set) noisy counts post-processed. Withheld groups are zeros.

    >>> s = group_stats(np.array([0, 1]), np.array([0.2, 0.7]))
    >>> out = evaluation_arrays(s, [s, None], 1, None, None)
    >>> out["subgroup_stats"].shape, out["subgroup_released"].tolist()
    ((2, 42), [1.0, 0.0])
    """
    released = np.array([g is not None for g in groups], dtype=float)
    if sigma is None:
        release = lambda stats, total: stats  # noqa: E731
    else:
        sd = sigma * release_sensitivity(n_attributes)
        release = lambda stats, total: noisy_counts(stats.counts, sd, rng, total)  # noqa: E731
    width = site.as_vector().size
    arrays = {STATS: release(site, site.n).as_vector()}  # the node's number of test patients is public
    if len(groups):  # a withheld group sends zeros, not even noise
        arrays[SUBGROUPS] = np.stack([np.zeros(width) if g is None else release(g, None).as_vector() for g in groups])
        arrays[RELEASED] = released
    return arrays


def importance(model: Params, X_scaled: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Exact runs: mean increase of the log loss when each feature is shuffled among the test rows."""
    return permutation_importance(model, X_scaled, y, repeats=IMPORTANCE_REPEATS, rng=np.random.default_rng(seed))


def withheld_notes(group: str, arrays: dict[str, np.ndarray]) -> list[str]:
    """A line for the node's audit chain when subgroups were withheld.

    >>> withheld_notes("metz", {"subgroup_released": np.array([1.0, 0.0, 0.0])})
    ['metz: 2 of 3 subgroups withheld (fewer than k_min patients, or secondary suppression)']
    """
    released = arrays.get(RELEASED)
    if released is None or released.all():
        return []
    hidden = int(np.sum(released == 0))
    return [f"{group}: {hidden} of {released.size} subgroups withheld (fewer than k_min patients, or secondary "
            "suppression)"]
