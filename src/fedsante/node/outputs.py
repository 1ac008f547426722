"""The node's own output gate: what a task computed passes disclosure control before it is sent.

Pure: takes the arrays and metrics a task produced and the node's patient counts, returns what may
leave (suppressed values as None) with the reasons for the node's audit chain, or raises
:class:`~fedsante.privacy.disclosure.DisclosureError` when nothing of it may leave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedsante.privacy.disclosure import (DisclosureError, DisclosurePolicy, assert_aggregate_only, check_count,
                                         protect_metrics)

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Release:
    """How to gate one task's outputs, as its algorithm declares them.

    ``test``: computed on the test rows (k_min applies to their count); ``fixed``: arrays whose length never
    depends on the number of patients; ``per_class``: metrics hidden when an outcome class is under k_min;
    ``evaluation``: the metrics describe each outcome class (class rules apply); ``class_arrays``: arrays
    withheld with the per-class metrics.
    """

    test: bool = False
    fixed: frozenset[str] = frozenset()
    per_class: tuple[str, ...] = ()
    evaluation: bool = False
    class_arrays: frozenset[str] = frozenset()


def release_outputs(release: Release, arrays: Arrays, metrics: dict[str, float | None], *, n_train: int,
                    n_test: int, n_total: int, k_min: int, group: str,
                    n_positive: int | None = None) -> tuple[Arrays, dict[str, float | None], list[str]]:
    """Apply k_min and the per-patient guard to one task's outputs (``k_min`` >= 11, the strictest that applies).

    ``n_positive`` is the true number of test patients with the outcome: under DP the released count is
    noisy, but whether a class is under k_min is decided on the true counts.

    >>> gate = Release(test=True, per_class=("auc",), evaluation=True)
    >>> arrays, metrics, notes = release_outputs(gate, {}, {"n": 16.0, "n_positive": 15.0, "accuracy": 0.9,
    ...     "auc": 0.8}, n_train=30, n_test=16, n_total=46, k_min=11, group="switzerland")
    >>> metrics["auc"] is None and metrics["n_positive"] is None and metrics["accuracy"] == 0.9
    True
    """
    policy = DisclosurePolicy(k_min=k_min)
    n = n_test if release.test else n_train
    check = check_count(n, policy, label="patients")
    if check.suppressed:  # a whole task on fewer than k_min patients: nothing of it may leave (no count said)
        rows = "test" if release.test else "training"
        raise DisclosureError(f"disclosure control: fewer than k_min = {k_min} patients among this hospital's "
                              f"{rows} rows; this node sends nothing for this task")
    # e.g. the evaluation statistics have a fixed length (counts and sums per tenth of predicted risk, per
    # subgroup; one importance per feature), whatever n
    assert_aggregate_only({k: v for k, v in arrays.items() if k not in release.fixed}, n,
                          other_counts=(n_train, n_test, n_total))
    if not release.evaluation:
        return arrays, metrics, []
    checked = metrics if n_positive is None or "n_positive" not in metrics else {**metrics, "n_positive": n_positive}
    protected = protect_metrics(checked, n, policy, group=group, per_class=release.per_class)
    values = {key: None if protected.values[key] is None else metrics[key] for key in metrics}
    notes = protected.log_lines()
    withheld = sorted(release.class_arrays & set(arrays))
    if withheld and values.get("n_positive") is None:  # these arrays describe each outcome class
        arrays = {k: v for k, v in arrays.items() if k not in withheld}
        notes.append(f"{group}: {', '.join(withheld)} withheld with the per-class metrics")
    return arrays, values, notes
