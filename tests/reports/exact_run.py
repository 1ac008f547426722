"""What the report tests share: one exact federated run on the four hospitals (fixture ``exact``), shared by
``conftest.py``, and the helpers to recompute its numbers centrally."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.learning.logistic import predict_proba
from fedsante.learning.scaling import Scaler
from fedsante.reports.trust import build_report
from fedsante.sim import lifecycle
from fedsante.sim.launcher import HOSPITAL_NAMES
from fedsante.sim.simulation import simulate_study

NODES = {h: {"hospital_name": name, "territory": territory} for h, (name, territory) in HOSPITAL_NAMES.items()}


@pytest.fixture(scope="session")
def exact():
    """An exact (no DP) run, so that every number can be recomputed centrally from the released model."""
    tables = {h: load_hospital(h) for h in HOSPITALS}
    run = asyncio.run(simulate_study(tables, {"privacy": "none", "scaling": "global", "rounds": 3}))
    spec = lifecycle.example_spec(list(tables)).model_dump(mode="json")
    return tables, run, build_report(run, NODES, spec)


def predictions(run: dict, table) -> tuple[np.ndarray, np.ndarray]:
    model = {k: np.array(v) for k, v in run["result"]["model"].items()}
    scaler = Scaler(mean=np.array(run["result"]["scaler"]["mean"]), scale=np.array(run["result"]["scaler"]["scale"]))
    X, y = table.part("test")
    return y, predict_proba(model, scaler.transform(X))


