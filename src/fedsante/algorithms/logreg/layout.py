"""The vectors logistic regression sums by secure aggregation, as layouts (:class:`~fedsante.federation.layout.Layout`).

The node packs with these layouts, the desk unpacks the sum with the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedsante.algorithms.logreg.evaluation import GROUP_WIDTH
from fedsante.federation.layout import Layout
from fedsante.federation.result import SUBGROUPS

WEIGHT = "n"  # the node's number of patients, summed with its vector


def moments(n_features: int) -> Layout:
    """Round 0: the number of training rows, the sums, the sums of squares."""
    return Layout(((WEIGHT, (1,)), ("total", (n_features,)), ("total_sq", (n_features,))))


def update(shapes: Mapping[str, tuple[int, ...]]) -> Layout:
    """A training round: ``n * (local - global)`` per parameter (sorted by name), then the weight ``n``."""
    return Layout((*((k, tuple(shapes[k])) for k in sorted(shapes)), (WEIGHT, (1,))))


def subgroups(groups: int) -> Layout:
    """After the evaluation: one row of statistics per subgroup, then the number of test patients."""
    return Layout(((SUBGROUPS, (groups, GROUP_WIDTH)), (WEIGHT, (1,))))
