"""Fairness per subgroup for the trust report (pure functions, no I/O).

Subgroups are data (:class:`Attribute`), so a charter can add or change them without code. The steps:

1. :func:`masks` splits a node's rows into the groups of one attribute (on the original, unscaled features);
2. :func:`group_metrics` computes each group's metrics at the node (counts and rates only leave it);
3. :func:`suppress_small` hides groups that describe too few patients (k_min, :mod:`fedsante.privacy.disclosure`);
4. :func:`gaps` gives, per metric, the best and worst group, and :func:`flags` words the gaps above the charter's
   ``fairness_gap_threshold`` (0.10 in the Grand-Est charter) as plain sentences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedsante.privacy.disclosure import K_MIN_FLOOR, DisclosurePolicy
from fedsante.reports.metrics import accuracy, roc_auc

__all__ = ["AGE", "ATTRIBUTES", "DEFAULT_ATTRIBUTES", "METRICS", "SEX", "Attribute", "attributes",
           "equalized_odds_difference", "flags", "gaps", "group_metrics", "masks", "suppress_small"]

METRICS = ("auc", "accuracy", "sensitivity", "specificity", "ppv", "oe_ratio")
NAMES = {"auc": "AUC", "accuracy": "Accuracy", "sensitivity": "Sensitivity", "specificity": "Specificity",
         "ppv": "Positive predictive value", "oe_ratio": "The observed/expected ratio"}
_TOLERANCE = 1e-12  # a gap must exceed the threshold by more than rounding error (0.8 - 0.7 > 0.1 in floats)


@dataclass(frozen=True)
class Attribute:
    """A protected attribute: groups ``(label, low, high)`` hold the rows with ``low <= x < high`` on ``feature``.

    >>> Attribute("sex", "sex", (("female", 0, 0.5), ("male", 0.5, 1.01))).labels
    ('female', 'male')
    >>> Attribute("age", "age", (("old", 60, 200), ("mid", 40, 65)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: attribute 'age': groups 'mid' [40, 65) and 'old' [60, 200) overlap; ...
    """

    name: str
    feature: str
    groups: tuple[tuple[str, float, float], ...]

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError(f"attribute {self.name!r} needs at least one group (label, low, high). Got none.")
        for label, low, high in self.groups:
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"attribute {self.name!r}, group {label!r}: low = {low!r} must be below high = "
                                 f"{high!r}, both finite (the group holds low <= x < high)")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"attribute {self.name!r} has duplicate group labels: {list(self.labels)}")
        ordered = sorted(self.groups, key=lambda g: (g[1], g[2]))
        for (a, a_low, a_high), (b, b_low, b_high) in zip(ordered, ordered[1:]):
            if b_low < a_high:
                raise ValueError(f"attribute {self.name!r}: groups {a!r} [{a_low:g}, {a_high:g}) and {b!r} "
                                 f"[{b_low:g}, {b_high:g}) overlap; a patient must fall in at most one group")

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.groups)


SEX = Attribute("sex", "sex", (("female", 0, 0.5), ("male", 0.5, 1.01)))
AGE = Attribute("age", "age", (("<45", 0, 45), ("45-54", 45, 55), ("55-64", 55, 65), (">=65", 65, 200)))
DEFAULT_ATTRIBUTES = (SEX, AGE)
ATTRIBUTES = {attribute.name: attribute for attribute in DEFAULT_ATTRIBUTES}
"""The attributes a project may name (parameter ``fairness_attributes``), by name."""


def attributes(names: Sequence[str]) -> tuple[Attribute, ...]:
    """The attributes called ``names``, in that order.

    >>> [a.name for a in attributes(["age"])]
    ['age']
    >>> attributes(["ethnicity"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: unknown fairness attribute 'ethnicity'; known: sex, age
    """
    unknown = [name for name in names if name not in ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown fairness attribute {unknown[0]!r}; known: {', '.join(ATTRIBUTES)}")
    return tuple(ATTRIBUTES[name] for name in names)


def masks(X: np.ndarray, feature_names: Sequence[str], attribute: Attribute) -> dict[str, np.ndarray]:
    """Boolean row mask of each group of ``attribute``. ``X`` holds original units (before scaling).

    >>> X = np.array([[44.0, 1.0], [45.0, 0.0], [70.0, 1.0]])
    >>> {k: v.tolist() for k, v in masks(X, ["age", "sex"], SEX).items()}
    {'female': [False, True, False], 'male': [True, False, True]}
    >>> [int(m.sum()) for m in masks(X, ["age", "sex"], AGE).values()]
    [1, 1, 0, 1]
    """
    names = list(feature_names)
    if attribute.feature not in names:
        raise ValueError(f"attribute {attribute.name!r} needs feature {attribute.feature!r}, which is not among "
                         f"the features: {', '.join(names)}")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError(f"X must have shape (n, {len(names)}) to match feature_names. Got shape {X.shape}.")
    column = X[:, names.index(attribute.feature)]
    return {label: (column >= low) & (column < high) for label, low, high in attribute.groups}


def group_metrics(y: np.ndarray, proba: np.ndarray, group_masks: Mapping[str, np.ndarray], *,
                  threshold: float = 0.5) -> dict[str, dict[str, float]]:
    """Counts and metrics of each group, at the node: ``n``, ``n_positive``, and every metric of :data:`METRICS`.

    A metric that is undefined in a group (no positive patient for sensitivity...) is NaN.
    ``oe_ratio`` is observed / expected cases: ``sum(y) / sum(proba)``, 1 when calibrated in the large.

    >>> y = np.array([0.0, 0.0, 1.0, 1.0]); p = np.array([0.2, 0.6, 0.7, 0.9])
    >>> m = group_metrics(y, p, {"all": np.ones(4, dtype=bool)})["all"]
    >>> m["n"], m["n_positive"], m["sensitivity"], m["specificity"], m["ppv"], round(m["oe_ratio"], 3)
    (4, 2, 1.0, 0.5, 0.6666666666666666, 0.833)
    """
    y, proba = np.asarray(y, dtype=float), np.asarray(proba, dtype=float)
    if y.ndim != 1 or proba.shape != y.shape:
        raise ValueError(f"y and proba must be 1-D of the same length. Got shapes {y.shape} and {proba.shape}.")
    out = {}
    for label, mask in group_masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != y.shape:
            raise ValueError(f"mask of group {label!r} has shape {mask.shape}; it must match y's {y.shape}.")
        yg, pg = y[mask], proba[mask]
        pred, pos = pg >= threshold, yg == 1
        tp, fp = int(np.sum(pred & pos)), int(np.sum(pred & ~pos))
        n_pos, n_neg, n_pred = int(pos.sum()), int((~pos).sum()), int(pred.sum())
        expected = float(pg.sum())
        out[label] = {
            "n": int(mask.sum()), "n_positive": n_pos, "auc": roc_auc(yg, pg), "accuracy": accuracy(yg, pg,
                                                                                                  threshold=threshold),
            "sensitivity": tp / n_pos if n_pos else math.nan,
            "specificity": (n_neg - fp) / n_neg if n_neg else math.nan,
            "ppv": tp / n_pred if n_pred else math.nan,
            "oe_ratio": n_pos / expected if expected > 0 else math.nan,
        }
    return out


def suppress_small(per_group: Mapping[str, Mapping], k_min: int = K_MIN_FLOOR) -> tuple[dict[str, dict | None],
                                                                                       list[str]]:
    """Replace by None each group with 1..k_min-1 patients, or 1..k_min-1 patients in an outcome class.

    The rule is :meth:`DisclosurePolicy.is_small` (so ``k_min`` below the platform floor of 11 is refused).
    The class rule applies when the group's dict gives ``n_positive``. A group with no patients is dropped
    too: its metrics are undefined. The reasons state the true counts: they are for the node's log, not
    for publication. Counts of the kept groups may still reveal a hidden group's count by subtraction
    from a known total; release counts through :func:`fedsante.privacy.disclosure.protect_subgroups`.

    >>> kept, reasons = suppress_small({"age <45": {"n": 7}, "age 45-54": {"n": 40, "n_positive": 20}}, 11)
    >>> kept
    {'age <45': None, 'age 45-54': {'n': 40, 'n_positive': 20}}
    >>> reasons
    ["subgroup 'age <45' has 7 patients, under k_min = 11"]
    """
    policy = DisclosurePolicy(k_min=k_min)
    kept: dict[str, dict | None] = {}
    reasons: list[str] = []
    for label, metrics in per_group.items():
        if metrics is None or "n" not in metrics:
            raise ValueError(f"subgroup {label!r} has no count 'n'; every group's metrics need it")
        n, positive = metrics["n"], metrics.get("n_positive")
        reason = None
        if n is None:
            reason = f"subgroup {label!r} has its count withheld already"
        elif n == 0:
            reason = f"subgroup {label!r} has no patients: its metrics are undefined"
        elif policy.is_small(n):
            reason = f"subgroup {label!r} has {n:g} patients, under k_min = {policy.k_min}"
        elif positive is not None and (policy.is_small(positive) or policy.is_small(n - positive)):
            reason = (f"subgroup {label!r} has {positive:g} positive and {n - positive:g} negative patients; "
                      f"an outcome class is under k_min = {policy.k_min}")
        kept[label] = None if reason else dict(metrics)
        if reason:
            reasons.append(reason)
    return kept, reasons


def _valid(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


def gaps(per_group: Mapping[str, Mapping | None], metrics: Sequence[str] = METRICS) -> dict[str, dict]:
    """Per metric: the best and worst group, ``gap = max - min`` and ``groups = (argmax, argmin)``.

    Suppressed groups (None) and missing, None or non-finite values are left out. With fewer than two
    valid groups, ``max``, ``min`` and ``gap`` are None and ``groups`` is empty. Ties go to the first group.

    >>> g = gaps({"male": {"auc": 0.86}, "female": {"auc": 0.72}, "tiny": None}, metrics=("auc",))
    >>> round(g["auc"]["gap"], 2), g["auc"]["groups"]
    (0.14, ('male', 'female'))
    """
    out = {}
    for metric in metrics:
        values = {label: float(m[metric]) for label, m in per_group.items()
                  if m is not None and _valid(m.get(metric))}
        if len(values) < 2:
            out[metric] = {"max": None, "min": None, "gap": None, "groups": ()}
            continue
        high, low = max(values, key=values.get), min(values, key=values.get)
        out[metric] = {"max": values[high], "min": values[low], "gap": values[high] - values[low],
                       "groups": (high, low)}
    return out


def equalized_odds_difference(metric_gaps: Mapping[str, Mapping]) -> float | None:
    """``max(TPR gap, FPR gap)``, with FPR = 1 - specificity (so the FPR gap is the specificity gap).

    None unless both the sensitivity and the specificity gaps are available.

    >>> equalized_odds_difference({"sensitivity": {"gap": 0.05}, "specificity": {"gap": 0.12}})
    0.12
    """
    tpr, fpr = (metric_gaps.get(k, {}).get("gap") for k in ("sensitivity", "specificity"))
    if tpr is None or fpr is None:
        return None
    return max(tpr, fpr)


def _digits(gap: float, threshold: float) -> int:
    """Decimals to show so that a gap above the threshold does not read as equal to it."""
    digits = 2
    while digits < 6 and round(gap, digits) <= round(threshold, digits):
        digits += 1
    return digits


def flags(metric_gaps: Mapping[str, Mapping], threshold: float) -> list[str]:
    """One plain-English sentence per metric whose gap exceeds ``threshold``, then one for equalized odds.

    >>> g = gaps({"male": {"auc": 0.86, "accuracy": 0.80}, "female": {"auc": 0.72, "accuracy": 0.76}})
    >>> flags(g, 0.10)
    ["AUC differs by 0.14 between male (0.86) and female (0.72), above the charter's threshold of 0.10"]
    """
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0 (the charter's fairness_gap_threshold). "
                         f"Got {threshold!r}.")
    shown = f"{threshold:.2f}" if round(threshold, 2) == threshold else f"{threshold:g}"
    sentences = []
    for metric, g in metric_gaps.items():
        if g.get("gap") is None or g["gap"] <= threshold + _TOLERANCE:
            continue
        d = _digits(g["gap"], threshold)
        high, low = g["groups"]
        sentences.append(f"{NAMES.get(metric, metric)} differs by {g['gap']:.{d}f} between {high} ({g['max']:.{d}f})"
                         f" and {low} ({g['min']:.{d}f}), above the charter's threshold of {shown}")
    eod = equalized_odds_difference(metric_gaps)
    if eod is not None and eod > threshold + _TOLERANCE:
        tpr, spec = metric_gaps["sensitivity"], metric_gaps["specificity"]
        d = _digits(eod, threshold)
        sentences.append(f"The equalized-odds difference is {eod:.{d}f}, the larger of the true-positive-rate gap "
                         f"({tpr['gap']:.{d}f}, highest for {tpr['groups'][0]}, lowest for {tpr['groups'][1]}) and "
                         f"the false-positive-rate gap ({spec['gap']:.{d}f}, highest for {spec['groups'][1]}, lowest "
                         f"for {spec['groups'][0]}), above the charter's threshold of {shown}")
    return sentences
