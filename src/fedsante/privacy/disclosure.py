"""Disclosure control enforced by the node: release only what a statistician would publish.

One module for statistics and learning, after standards.md §4:

* ``k_min`` (default and floor 11, CASD: "aucune case ne doit concerner moins de 11 unités"): a count
  of 1..k_min-1 patients, and any statistic (sum, mean, accuracy, AUC) on fewer patients, is suppressed.
  True zeros are shown, as NHS Digital does (it stars 1-7, not 0) and as standards.md recommends
  ("suppress 1-10; keep true zeros unless they disclose by subtraction"); with published totals,
  secondary suppression never needs to hide a zero.
* Secondary suppression (the CASD "secret secondaire"): no hidden cell may be recoverable by
  subtraction from published cells and totals.
* Optional rounding to the nearest ``round_to`` (5 for OpenSAFELY and NHS Digital).
* A parameters-to-samples guard for models (DataSHIELD ``nfilter.glm = 0.33``).
* A guard against per-patient arrays such as predictions, residuals or SHAP values.

Refusals raise :class:`DisclosureError`. Suppressions come back with their reasons so the node can log them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedsante.common.errors import ConfigError, DataError

__all__ = ["K_MIN_FLOOR", "MAX_PARAMS_RATIO_CEILING", "DisclosureError", "DisclosurePolicy", "ProtectedTable",
           "Release", "Suppression", "assert_aggregate_only", "check_count", "check_model_size", "protect_metrics",
           "protect_subgroups", "protect_table", "suppress_statistics"]

K_MIN_FLOOR = 11
MAX_PARAMS_RATIO_CEILING = 0.33
Value = float | np.ndarray | None


class DisclosureError(DataError):
    """A release was refused because it could disclose individual patients."""


@dataclass(frozen=True)
class DisclosurePolicy:
    """The release rules. A project may tighten the platform defaults but never loosen them.

    >>> DisclosurePolicy(k_min=20, round_to=5).k_min
    20
    >>> DisclosurePolicy(k_min=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fedsante.common.errors.ConfigError: k_min = 5 is below the platform floor of 11 ...
    """

    k_min: int = K_MIN_FLOOR
    round_to: int | None = None
    max_params_ratio: float = MAX_PARAMS_RATIO_CEILING

    def __post_init__(self) -> None:
        if type(self.k_min) is not int or self.k_min < K_MIN_FLOOR:
            raise ConfigError(f"k_min = {self.k_min!r} is below the platform floor of {K_MIN_FLOOR} (CASD: no cell "
                              f"may describe fewer than 11 patients); a project may only raise it")
        if self.round_to is not None and (type(self.round_to) is not int or self.round_to < 1):
            raise ConfigError(f"round_to = {self.round_to!r} must be a positive integer (e.g. 5) or None")
        if not 0 < self.max_params_ratio <= MAX_PARAMS_RATIO_CEILING:
            raise ConfigError(f"max_params_ratio = {self.max_params_ratio!r} must be in (0, "
                              f"{MAX_PARAMS_RATIO_CEILING}] (DataSHIELD nfilter.glm); a project may only lower it")

    def round(self, count: float) -> int:
        """``count`` to the nearest ``round_to`` (halves up); unchanged without rounding."""
        if self.round_to is None:
            return int(count)
        return int(np.floor(count / self.round_to + 0.5)) * self.round_to

    def is_small(self, n: float) -> bool:
        """True for 1..k_min-1 patients: too few to publish, yet not none."""
        return 0 < n < self.k_min


@dataclass(frozen=True)
class Suppression:
    """One withheld value and why. ``cell`` is its index in a :class:`ProtectedTable`."""

    item: str
    reason: str
    cell: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Release:
    """Values cleared for release (None where suppressed) and the suppressions, for the node's log."""

    values: dict[str, Value]
    suppressed: tuple[Suppression, ...] = ()

    def log_lines(self) -> list[str]:
        return [f"suppressed {s.item}: {s.reason}" for s in self.suppressed]


def _count(n: float, what: str) -> int:
    if not (np.isfinite(n) and n >= 0 and float(n) == int(n)):
        raise DataError(f"{what} must be a non-negative whole number of patients. Got {n!r}.")
    return int(n)


def check_count(n: float, policy: DisclosurePolicy, *, label: str = "n") -> Release:
    """Publish a count of patients (rounded if the policy says so), or suppress it when it is 1..k_min-1.

    >>> check_count(11, DisclosurePolicy()).values, check_count(0, DisclosurePolicy()).values
    ({'n': 11}, {'n': 0})
    >>> check_count(7, DisclosurePolicy(), label="sex=F").log_lines()
    ['suppressed sex=F: sex=F counts 7 patients, fewer than k_min = 11']
    """
    n = _count(n, label)
    if policy.is_small(n):
        reason = f"{label} counts {n} patients, fewer than k_min = {policy.k_min}"
        return Release({label: None}, (Suppression(label, reason),))
    return Release({label: policy.round(n)})


def suppress_statistics(stats: Mapping[str, Value], n: float, policy: DisclosurePolicy, *,
                        group: str = "all patients") -> Release:
    """Suppress every statistic (sum, mean, AUC...) computed on 1..k_min-1 patients, or on none (undefined).

    >>> suppress_statistics({"mean_age": 61.2}, 7, DisclosurePolicy(), group="sex=F").log_lines()
    ["suppressed mean_age: subgroup 'sex=F' has 7 patients, fewer than k_min = 11: its statistics are suppressed"]
    """
    n = _count(n, f"the size of {group!r}")
    if n >= policy.k_min:
        return Release(dict(stats))
    reason = (f"subgroup {group!r} has no patients: its statistics are undefined" if n == 0 else
              f"subgroup {group!r} has {n} patients, fewer than k_min = {policy.k_min}: its statistics are suppressed")
    return Release(dict.fromkeys(stats), tuple(Suppression(key, reason) for key in stats))


def protect_metrics(metrics: Mapping[str, Value], n: float, policy: DisclosurePolicy, *, group: str = "all patients",
                    per_class: Sequence[str] = ("auc",)) -> Release:
    """Protect one site's or subgroup's metrics: keys ``n`` and ``n_*`` are counts, others statistics on ``n``.

    With 1..k_min-1 patients everything is hidden. With none, the counts (zeros) are shown and the
    statistics are hidden as undefined.
    With ``n_positive``, each outcome class must hold 0 or at least k_min patients. Otherwise
    ``n_positive`` is hidden, since ``n - n_positive`` would give the other class. The statistics in
    ``per_class`` are hidden too, because they are computed on each class.

    >>> r = protect_metrics({"n": 60, "n_positive": 55, "accuracy": 0.8, "auc": 0.9}, 60, DisclosurePolicy())
    >>> r.values
    {'n': 60, 'n_positive': None, 'accuracy': 0.8, 'auc': None}
    """
    n = _count(n, f"the size of {group!r}")
    if policy.is_small(n):
        return suppress_statistics(metrics, n, policy, group=group)
    counts = {key: value for key, value in metrics.items() if key == "n" or key.startswith("n_")}
    release = suppress_statistics({k: v for k, v in metrics.items() if k not in counts}, n, policy, group=group)
    values, suppressed = dict(release.values), list(release.suppressed)  # statistics are undefined when n == 0
    for key, value in counts.items():
        counted = check_count(value, policy, label=key) if value is not None else Release({key: None})
        values[key] = counted.values[key]
        suppressed += counted.suppressed
    values = {key: values[key] for key in metrics}
    if metrics.get("n_positive") is not None:
        positive = _count(metrics["n_positive"], "n_positive")
        negative = n - positive
        if policy.is_small(positive) or policy.is_small(negative):
            reason = (f"subgroup {group!r} has {positive} positive and {negative} negative patients; a class under "
                      f"k_min = {policy.k_min} could be recovered or described")
            for key in ("n_positive", *per_class):
                if key in values and not any(s.item == key for s in suppressed):
                    values[key] = None
                    suppressed.append(Suppression(key, reason))
    return Release(values, tuple(suppressed))


def protect_subgroups(groups: Mapping[str, Mapping[str, Value]], policy: DisclosurePolicy) -> dict[str, Release]:
    """Protect the metrics of subgroups that partition the patients (each dict holds its ``n``).

    Totals are assumed known (a node releases them elsewhere), so each count shared by the groups
    (``n``, ``n_positive``...) gets secondary suppression across them: hiding one group's count hides
    another's too. A group whose ``n`` is hidden has all its statistics hidden, sums included.

    >>> out = protect_subgroups({"F": {"n": 7}, "M": {"n": 50}, "U": {"n": 30}}, DisclosurePolicy())
    >>> {name: r.values["n"] for name, r in out.items()}
    {'F': None, 'M': 50, 'U': None}
    """
    names = list(groups)
    if not names or any("n" not in groups[name] for name in names):
        raise DataError("protect_subgroups needs at least one subgroup, each with its number of patients 'n'.")
    out = {name: protect_metrics(groups[name], groups[name]["n"], policy, group=name) for name in names}
    shared = [key for key in groups[names[0]] if (key == "n" or key.startswith("n_"))
              and all(groups[name].get(key) is not None for name in names)]
    for key in sorted(shared, key=lambda k: k != "n"):
        hidden = np.array([out[name].values.get(key) is None and groups[name][key] != 0 for name in names])
        table = protect_table(np.array([groups[name][key] for name in names], dtype=float), policy, margins=False,
                              hide=hidden)
        for name in (name for i, name in enumerate(names) if table.mask[i] and not hidden[i]):
            reason = (f"secondary suppression: with the total known, {key} of subgroup {name!r} would reveal a "
                      f"hidden subgroup's by subtraction")
            release = out[name]
            keys = [k for k in release.values if release.values[k] is not None] if key == "n" else [key]
            out[name] = Release({**release.values, **dict.fromkeys(keys)},
                                release.suppressed + tuple(Suppression(k, reason) for k in keys))
    return out


@dataclass(frozen=True)
class ProtectedTable:
    """A published table of counts. ``published`` holds NaN where a cell is suppressed.

    When ``margins`` is set, the last row and column (or the last entry of a 1-D table) hold the totals.
    """

    published: np.ndarray
    mask: np.ndarray
    margins: bool
    suppressed: tuple[Suppression, ...]

    def as_lists(self) -> list:
        """The published table as nested lists, with None for suppressed cells (JSON-ready)."""
        return np.where(self.mask, None, self.published).tolist()


def protect_table(table: np.ndarray, policy: DisclosurePolicy, margins: bool = True, *,
                  hide: np.ndarray | None = None) -> ProtectedTable:
    """Primary and secondary suppression of a 1-D or 2-D table of counts, then rounding if the policy says so.

    Primary suppression hides cells of 1..k_min-1, totals included, and the cells set in ``hide``
    (hidden for another reason). Secondary suppression assumes the attacker knows every total (row,
    column, grand), since n is released elsewhere; ``margins`` says whether totals are published here
    (and may be hidden). Each hidden cell is put on a cycle of hidden cells (see ``_graph``) by hiding
    the cheapest complement: preferably non-zero, not a total, smallest counts. Rounding applies to
    each published cell and total separately, so a total need not equal the sum of its rounded cells
    (as with OpenSAFELY and NHS Digital).

    >>> protect_table(np.array([3, 40, 25]), DisclosurePolicy()).as_lists()
    [None, 40.0, None, 68.0]
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim not in (1, 2) or counts.size == 0:
        raise DataError(f"protect_table takes a non-empty 1-D or 2-D table of counts. Got shape {counts.shape}.")
    if not (np.all(np.isfinite(counts)) and np.all(counts >= 0) and np.all(counts == np.round(counts))):
        raise DataError("protect_table takes counts: every cell must be a non-negative whole number.")
    full, edges, labels = _graph(counts)
    candidates = {cell for cell in edges if margins or _is_interior(cell, counts.shape)}
    mask = np.zeros(full.shape, dtype=bool)
    suppressed: list[Suppression] = []
    hide = np.zeros(counts.shape, dtype=bool) if hide is None else np.asarray(hide, dtype=bool)
    if hide.shape != counts.shape:
        raise DataError(f"hide has shape {hide.shape}; it must match the table's {counts.shape}.")
    for cell in sorted(candidates):
        if policy.is_small(full[cell]) or (_is_interior(cell, counts.shape) and hide[cell]):
            mask[cell] = True
            reason = (f"counts {full[cell]:g} patients, fewer than k_min = {policy.k_min}"
                      if policy.is_small(full[cell]) else "hidden by the caller")
            suppressed.append(Suppression(labels[cell], reason, cell))
    adjacency: dict[int, list[tuple[tuple[int, ...], int]]] = {}
    for cell in candidates:
        a, b = edges[cell]
        adjacency.setdefault(a, []).append((cell, b))
        adjacency.setdefault(b, []).append((cell, a))
    for target in list(suppressed):  # cells added below already lie on a cycle with their target
        path = _cheapest_path(edges, adjacency, target.cell, mask, full, counts.shape)
        if path is None:  # no complement exists: only the whole table is safe
            path = [c for c in sorted(candidates) if not mask[c]]
        reason = f"secondary suppression, so that {target.item} cannot be recovered by subtraction from the totals"
        for cell in path:
            if not mask[cell]:
                mask[cell] = True
                suppressed.append(Suppression(labels[cell], reason, cell))
    published = np.vectorize(policy.round, otypes=[float])(full)
    published[mask] = np.nan
    if not margins:
        interior = tuple(slice(0, k) for k in counts.shape)
        published, mask = published[interior], mask[interior]
    return ProtectedTable(published, mask, margins, tuple(suppressed))


def _is_interior(cell: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return all(i < k for i, k in zip(cell, shape))


def _graph(counts: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """The table with its margins, and each cell as an edge between two nodes.

    In a 2-D table each cell joins its row node to its column node. Row totals join a row to the
    "total column", column totals join the "total row" to a column, and the grand total joins those
    two. In a 1-D table every cell and the total join the same two nodes. Suppressed cells can all move
    at once, without changing any total, exactly along a cycle of this graph.
    """
    if counts.ndim == 1:
        n = counts.size
        labels = {(j,): ("total" if j == n else f"cell {j}") for j in range(n + 1)}
        return np.append(counts, counts.sum()), dict.fromkeys(labels, (0, 1)), labels
    rows, cols = counts.shape
    full = np.zeros((rows + 1, cols + 1))
    full[:rows, :cols] = counts
    full[:rows, cols] = counts.sum(axis=1)
    full[rows, :cols] = counts.sum(axis=0)
    full[rows, cols] = counts.sum()
    edges, labels = {}, {}
    for i, j in itertools.product(range(rows + 1), range(cols + 1)):
        edges[i, j] = (i, rows + 1 + j)
        labels[i, j] = ("grand total" if (i, j) == (rows, cols) else f"row {i} total" if j == cols
                        else f"column {j} total" if i == rows else f"cell ({i}, {j})")
    return full, edges, labels


def _cheapest_path(edges: dict, adjacency: dict, avoid: tuple[int, ...], mask: np.ndarray, full: np.ndarray,
                   shape: tuple[int, ...]) -> list[tuple[int, ...]] | None:
    """Cells joining the ends of ``avoid`` without it: with it, a cycle. Dijkstra; hidden cells cost nothing,
    others rank by (is zero, is a total, count). An empty path: ``avoid`` already lies on a hidden cycle."""
    start, goal = edges[avoid]
    heap: list = [((0, 0, 0.0), start)]
    came: dict[int, tuple[int, ...] | None] = {start: None}
    best = {start: (0, 0, 0.0)}
    while heap:
        cost, node = heapq.heappop(heap)
        if node == goal:
            path, at = [], goal
            while came[at] is not None:
                path.append(came[at])
                a, b = edges[came[at]]
                at = a if at == b else b
            return path
        if cost > best[node]:
            continue
        for cell, other in adjacency.get(node, []):
            if cell == avoid:
                continue
            step = (0, 0, 0.0) if mask[cell] else (int(full[cell] == 0), int(not _is_interior(cell, shape)), full[cell])
            new = (cost[0] + step[0], cost[1] + step[1], cost[2] + step[2])
            if other not in best or new < best[other]:
                best[other], came[other] = new, cell
                heapq.heappush(heap, (new, other))
    return None


def check_model_size(n_params: int, n_samples: int, policy: DisclosurePolicy) -> None:
    """Refuse a model fitted on fewer than k_min patients or with more than ``max_params_ratio * n_samples`` parameters.

    >>> check_model_size(14, 100, DisclosurePolicy())
    >>> check_model_size(14, 40, DisclosurePolicy())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fedsante.privacy.disclosure.DisclosureError: a model with 14 parameters fitted on 40 patients exceeds ...
    """
    if n_samples < policy.k_min:
        raise DisclosureError(f"a model fitted on {n_samples} patients, fewer than k_min = {policy.k_min}, may not "
                              f"leave the node: its update describes too few patients")
    limit = policy.max_params_ratio * n_samples
    if n_params > limit:
        raise DisclosureError(f"a model with {n_params} parameters fitted on {n_samples} patients exceeds the limit of "
                              f"{policy.max_params_ratio:g} x {n_samples} = {limit:.1f} parameters (DataSHIELD "
                              f"nfilter.glm): it could encode individual records; use fewer features or more patients")


def assert_aggregate_only(payload: Mapping[str, np.ndarray], n: int, *, other_counts: Sequence[int] = ()) -> None:
    """Refuse a payload that looks per-patient (predictions, residuals, SHAP values...).

    ``n`` is the number of patients the payload was computed on. ``other_counts`` lists other patient
    counts held by the node, such as the test set or the whole table. This is a heuristic, and it
    refuses (1) any array with an axis as long as one of those counts, and (2) a payload holding at
    least ``n`` numbers in total, which is enough room for one value per patient. A legitimate
    aggregate is much smaller: models are capped at 0.33 n parameters.

    >>> assert_aggregate_only({"coef": np.zeros(13), "intercept": np.zeros(1)}, 100)
    >>> assert_aggregate_only({"proba": np.zeros(57)}, 57)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fedsante.privacy.disclosure.DisclosureError: array 'proba' has shape (57,): an axis of length 57 ...
    """
    counts = {int(n), *map(int, other_counts)}
    total = 0
    for key, array in payload.items():
        shape = np.shape(array)
        hits = sorted(counts.intersection(shape))
        if hits:
            raise DisclosureError(f"array {key!r} has shape {shape}: an axis of length {hits[0]} equals a number of "
                                  f"patients at this node, so it looks like one value per patient (prediction, "
                                  f"residual, SHAP value); only aggregates may leave the node")
        total += int(np.size(array))
    if total >= n:
        raise DisclosureError(f"the payload holds {total} numbers computed on {n} patients: that is room for one value "
                              f"per patient; only aggregates (fewer numbers than patients) may leave the node")
