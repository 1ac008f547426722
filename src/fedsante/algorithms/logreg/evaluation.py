"""What a node releases about its test patients at the end of a run (pure, no I/O).

- ``evaluate``: the performance statistics of all its test patients
  (:class:`~fedsante.reports.performance.GroupStats`), shown per hospital in the trust report; with
  permutation importance in exact runs only (under differential privacy a patient's share of a
  shuffled log loss is too loosely bounded for a useful noisy release);
- ``subgroups``: the same statistics for each subgroup of the fairness attributes (sex, age bands...),
  sent only through secure aggregation, so that the desk learns their sums over the hospitals and
  applies k_min to the sums: a group too small at every hospital can be large enough over all of them.

Under differential privacy only counts leave (:mod:`fedsante.reports.noise`): a patient adds 1 to
one count of the hospital's block (L2 sensitivity 1) and to one count per attribute of the subgroups'
block (sensitivity ``sqrt(attributes)``); the noise multiplier is relative to those. The hospital's
counts are post-processed at the node (non-negative, summing to its public number of test patients);
the subgroups' noise is shared among the nodes (each adds a share so that the secure sum carries
the whole noise once ``noise_shares`` nodes contributed), and their sums are post-processed at the desk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fedsante.federation.result import IMPORTANCE, STATS, SUBGROUPS
from fedsante.learning.logistic import Params
from fedsante.reports.explain import permutation_importance
from fedsante.reports.noise import noisy_counts
from fedsante.reports.performance import BINS, GroupStats, group_stats

FIXED = frozenset({STATS, SUBGROUPS, IMPORTANCE})
"""Arrays whose length is set by the model and the attributes, never by the number of patients."""
GROUP_WIDTH = 4 * BINS + 2  # one GroupStats vector per subgroup
IMPORTANCE_REPEATS = 5


def subgroup_matrix(groups: Mapping[str, np.ndarray], attributes: Sequence[tuple[str, int]], y: np.ndarray,
                    proba: np.ndarray) -> np.ndarray:
    """The statistics of every group of every attribute, one row each (``GroupStats.as_vector``), in order.

    ``groups[name]`` holds each row's group index for attribute ``name`` (-1: in no group); ``attributes``
    lists ``(name, number of groups)``.

    >>> y = np.array([0, 1, 1, 0, 1])
    >>> m = subgroup_matrix({"sex": np.array([0, 0, 0, 1, 1])}, [("sex", 2)], y, np.full(5, 0.4))
    >>> m.shape, GroupStats.from_vector(m[0]).n, GroupStats.from_vector(m[1]).n_positive
    ((2, 42), 3.0, 1.0)
    """
    y = np.asarray(y)
    rows = [group_stats(y[groups[name] == g], proba[groups[name] == g]).as_vector()
            for name, count in attributes for g in range(count)]
    return np.stack(rows) if rows else np.zeros((0, 4 * BINS + 2))


def noisy_share(matrix: np.ndarray, n_attributes: int, sigma: float, shares: int, rng: np.random.Generator) -> np.ndarray:
    """This node's subgroup counts with its share of the noise (sums are left to the desk's post-processing).

    Each of ``shares`` nodes adds Gaussian noise of variance ``(sigma * sqrt(attributes))**2 / shares``
    to each count, so that their secure sum carries noise of standard deviation ``sigma * sqrt(attributes)``.
    """
    sd = sigma * release_sensitivity(n_attributes) / math.sqrt(shares)
    out = np.zeros_like(matrix)
    counts = matrix[:, :2 * BINS]
    out[:, :2 * BINS] = counts + rng.normal(size=counts.shape) * sd
    return out


def release_sensitivity(n_attributes: int) -> float:
    """L2 sensitivity of counts released under DP: 1 for the hospital's block, ``sqrt(attributes)`` for the
    subgroups' (one count per attribute).

    >>> release_sensitivity(0), round(release_sensitivity(2) ** 2, 9)
    (1.0, 2.0)
    """
    return math.sqrt(max(n_attributes, 1))


def evaluation_arrays(site: GroupStats, sigma: float | None, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """The hospital's statistics to send: exact, or (``sigma`` set) noisy counts post-processed.

    >>> s = group_stats(np.array([0, 1]), np.array([0.2, 0.7]))
    >>> evaluation_arrays(s, None, None)["stats"].shape
    (42,)
    """
    if sigma is not None:  # its number of test patients is public
        site = noisy_counts(site.counts, sigma * release_sensitivity(0), rng, site.n)
    return {STATS: site.as_vector()}


def importance(model: Params, X_scaled: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Exact runs: mean increase of the log loss when each feature is shuffled among the test rows."""
    return permutation_importance(model, X_scaled, y, repeats=IMPORTANCE_REPEATS, rng=np.random.default_rng(seed))
