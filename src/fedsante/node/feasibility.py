"""A node's answer to the feasibility stage: true counts decide, only "meets" or a reason code leaves.

See :mod:`fedsante.federation.feasibility` for the codes and the desk's side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedsante.federation.feasibility import assess


def cohort_counts(table: Any, *, binary: bool = True) -> dict[str, int]:
    """Training and test rows and, for a binary outcome, each class among each (LOCAL: never sent).

    >>> from types import SimpleNamespace
    >>> t = SimpleNamespace(y=np.array([1.0, 0.0, 1.0]), split=np.array(["train", "train", "test"]))
    >>> cohort_counts(t)["test_negative"], cohort_counts(t)["train_rows"]
    (0, 2)
    """
    counts = {}
    for split in ("train", "test"):
        y = np.asarray(table.y)[np.asarray(table.split) == split]
        counts[f"{split}_rows"] = int(y.size)
        if binary:
            counts[f"{split}_positive"] = int(np.sum(y == 1))
            counts[f"{split}_negative"] = int(np.sum(y == 0))
    return counts


def feasibility_payload(table: Any, k_min: int, *, binary: bool = True) -> dict[str, Any]:
    """``{"meets": bool, "reason": CODE or None, "notes": [CODE...]}`` for this node's cohort (no count)."""
    meets, code, notes = assess(cohort_counts(table, binary=binary), k_min)
    return {"meets": meets, "reason": code, "notes": notes}
