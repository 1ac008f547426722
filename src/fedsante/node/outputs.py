"""The node's own output gate: what a task computed passes disclosure control before it is sent.

Pure: takes the arrays and metrics a task produced and the node's patient counts, returns what may
leave (suppressed values as None) with the reasons for the node's audit chain, or raises
:class:`~fedsante.privacy.disclosure.DisclosureError` when nothing of it may leave.
"""

from __future__ import annotations

import numpy as np

from fedsante.node.evaluation import FIXED, STATS
from fedsante.privacy.disclosure import (DisclosureError, DisclosurePolicy, assert_aggregate_only, check_count,
                                         protect_metrics)

Arrays = dict[str, np.ndarray]
PER_CLASS = ("auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "ppv", "npv", "oe_ratio",
             "calibration_intercept", "calibration_slope", "scaled_brier")
"""Metrics computed on each outcome class separately, hidden when a class has 1 to k_min - 1 patients."""


def release_outputs(kind: str, arrays: Arrays, metrics: dict[str, float | None], *, n_train: int, n_test: int,
                    n_total: int, k_min: int, group: str,
                    n_positive: int | None = None) -> tuple[Arrays, dict[str, float | None], list[str]]:
    """Apply k_min and the per-patient guard to one task's outputs (``k_min`` >= 11, the strictest that applies).

    ``n_positive`` is the true number of test patients with the outcome: under DP the released count is
    noisy, but whether a class is under k_min is decided on the true counts.

    >>> arrays, metrics, notes = release_outputs("evaluate", {}, {"n": 16.0, "n_positive": 15.0, "accuracy": 0.9,
    ...     "auc": 0.8}, n_train=30, n_test=16, n_total=46, k_min=11, group="switzerland")
    >>> metrics["auc"] is None and metrics["n_positive"] is None and metrics["accuracy"] == 0.9
    True
    """
    policy = DisclosurePolicy(k_min=k_min)
    n = n_test if kind in ("evaluate", "subgroups") else n_train
    check = check_count(n, policy, label=f"{kind} patients")
    if check.suppressed:  # a whole task on fewer than k_min patients: nothing of it may leave
        raise DisclosureError(f"disclosure control: {check.suppressed[0].reason}; this node sends nothing for "
                              "this task")
    # the evaluation statistics have a fixed length (counts and sums per tenth of predicted risk, per subgroup;
    # one importance per feature), whatever n
    assert_aggregate_only({k: v for k, v in arrays.items() if k not in FIXED}, n, other_counts=(n_train, n_test, n_total))
    if kind != "evaluate":
        return arrays, metrics, []
    checked = metrics if n_positive is None or "n_positive" not in metrics else {**metrics, "n_positive": n_positive}
    release = protect_metrics(checked, n, policy, group=group, per_class=PER_CLASS)
    values = {key: None if release.values[key] is None else metrics[key] for key in metrics}
    notes = release.log_lines()
    if STATS in arrays and values.get("n_positive") is None:  # the statistics describe each outcome class
        arrays = {k: v for k, v in arrays.items() if k != STATS}
        notes.append(f"{group}: evaluation statistics withheld with the per-class metrics")
    return arrays, values, notes
