"""Logistic regression: DP-SGD at each node, the strategy's rounds over securely summed updates.

The catalogue entry :class:`LogReg`: parameters in :mod:`.params`, the desk's plan in :mod:`.plan`,
the node's handlers in :mod:`.node`, what the evaluation releases in :mod:`.evaluation`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from fedsante.algorithms.base import Algorithm, Arrays, Metrics
from fedsante.algorithms.logreg import layout
from fedsante.algorithms.logreg.evaluation import FIXED, STATS, SUBGROUPS
from fedsante.algorithms.logreg.node import execute
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.algorithms.logreg.plan import run_logreg
from fedsante.federation.coordinator import RunContext, RunOutcome
from fedsante.federation.secure import expected_config
from fedsante.privacy.secagg import SecAggConfig

__all__ = ["LogReg", "LogRegParams"]


class LogReg(Algorithm):
    id = "logreg"
    description = "Logistic regression trained by DP-SGD at each node, FedAvg under secure aggregation."
    params_model = LogRegParams
    modules = (
        "fedsante.algorithms.logreg",
        "fedsante.algorithms.logreg.params",
        "fedsante.algorithms.logreg.plan",
        "fedsante.algorithms.logreg.node",
        "fedsante.algorithms.logreg.evaluation",
        "fedsante.algorithms.logreg.layout",
        "fedsante.federation.layout",
        "fedsante.learning.logistic",
        "fedsante.learning.models",
        "fedsante.learning.strategies",
        "fedsante.learning.strategies.base",
        "fedsante.learning.strategies.fedavg",
        "fedsante.learning.strategies.fedprox",
        "fedsante.learning.scaling",
        "fedsante.reports.metrics",
        "fedsante.privacy.dp",
        "fedsante.learning.private_scaling",
        "fedsante.privacy.membership",
        "fedsante.reports.performance",
    )
    outcome_types = frozenset({"binary"})
    kinds = frozenset({"moments", "fit", "evaluate", "subgroups"})
    secure_kinds = frozenset({"subgroups"})
    update_kinds = frozenset({"fit"})
    test_kinds = frozenset({"evaluate", "subgroups"})
    fixed_arrays = FIXED
    evaluation_kinds = frozenset({"evaluate"})
    class_arrays = frozenset({STATS})
    per_class_metrics: ClassVar[tuple[str, ...]] = (
        "auc", "auc_ci_low", "auc_ci_high", "sensitivity", "specificity", "ppv", "npv", "oe_ratio",
        "calibration_intercept", "calibration_slope", "scaled_brier")

    async def run(self, context: RunContext) -> RunOutcome:
        return await run_logreg(context)

    def execute(self, kind: str, params: Any, arrays: Arrays, cohort: Any, *, node_id: str,
                round_number: int) -> tuple[Arrays, Metrics]:
        return execute(kind, params, arrays, cohort, node_id=node_id, round_number=round_number)

    def secure_config(self, kind: str, n_nodes: int, length: int) -> SecAggConfig:
        return expected_config(kind, n_nodes, length)

    def secure_vector(self, kind: str, arrays: Arrays, metrics: Metrics) -> np.ndarray:
        weight = {layout.WEIGHT: np.array([float(metrics["n"] or 0.0)])}
        if kind == "moments":  # the count is one of the moments
            return layout.moments(arrays["total"].size).pack(arrays)
        if kind == "subgroups":
            return layout.subgroups(arrays[SUBGROUPS].shape[0]).pack({**arrays, **weight})
        return layout.update({k: v.shape for k, v in arrays.items()}).pack({**arrays, **weight})
