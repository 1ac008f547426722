"""Algorithms and strategies as plug-ins: registered from outside fedsante, chosen by parameters."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from fedsante.algorithms import Algorithm, AlgorithmParams, catalogue, get_algorithm, installed, register, unregister
from fedsante.common.errors import ConfigError
from fedsante.data.heart import load_hospital
from fedsante.federation.coordinator import RunContext, RunOutcome
from fedsante.federation.layout import Layout
from fedsante.federation.secure import sum_config
from fedsante.sim.simulation import simulate_study


class PrevalenceParams(AlgorithmParams):
    """No parameter: the pooled prevalence of the outcome among the training rows."""


class Prevalence(Algorithm):
    """A second algorithm, defined in a test package: the pooled outcome prevalence by secure sum."""

    id = "prevalence_test"
    description = "Pooled prevalence of the outcome (test plug-in)."
    params_model = PrevalenceParams
    modules = ()
    kinds = frozenset({"count"})
    secure_kinds = frozenset({"count"})

    async def run(self, context: RunContext) -> RunOutcome:
        # one secure sum of (positives, n) over the hospitals: the desk never sees one hospital's count
        await context.secure_setup({1: sum_config(len(context.nodes), 2, clip=1e6)})  # counts: fine resolution
        total = await context.secure_sum("count", 1, {})
        positive, n = Layout.of({"positive": np.zeros(1), "n": np.zeros(1)}, last=("n",)).unpack(total).values()
        return RunOutcome(params={"prevalence": positive / n}, scaler=None, node_metrics={},
                          train_n={"secure sum": float(round(n[0]))})  # a sum of patient counts

    def execute(self, kind, params, arrays, cohort, *, node_id, round_number):
        y = cohort.part("train")[1]
        return {"positive": np.array([float(y.sum())])}, {"n": float(len(y))}

    def secure_config(self, kind, n_nodes, length):
        return sum_config(n_nodes, length, clip=1e6)


def test_an_algorithm_registered_from_a_test_package_joins_the_catalogue() -> None:
    # Execute
    register(Prevalence)
    try:
        # Assert: listed with its own code hash, found by id, its node handler runs on a cohort
        assert "prevalence_test" in catalogue() and "logreg" in catalogue()
        ref = installed()["prevalence_test"]
        assert ref.id == "prevalence_test" and len(ref.code_hash) == 64
        assert ref.code_hash != installed()["logreg"].code_hash
        algorithm = get_algorithm("prevalence_test")
        arrays, metrics = algorithm.execute("count", algorithm.parameters({}), {}, load_hospital("va"),
                                            node_id="va", round_number=1)
        assert metrics["n"] == 85 and arrays["positive"][0] == load_hospital("va").part("train")[1].sum()
        assert algorithm.secure_vector("count", arrays, metrics).tolist() == [arrays["positive"][0], 85.0]
    finally:
        unregister("prevalence_test")
    assert "prevalence_test" not in catalogue()


def test_a_registered_plugin_runs_a_governed_study_end_to_end_by_secure_sum() -> None:
    # Prepare
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian", "va")}
    register(Prevalence)
    try:
        # Execute: the same governance (charter, two reviews, signed approval naming its code hash, acceptance)
        run = asyncio.run(simulate_study(tables, {}, algorithm="prevalence_test"))
    finally:
        unregister("prevalence_test")

    # Assert: the pooled prevalence equals the one computed on the stacked training rows
    y = np.concatenate([t.part("train")[1] for t in tables.values()])
    assert run["status"] == "completed" and run["algorithm_id"] == "prevalence_test"
    assert run["result"]["model"]["prevalence"][0] == pytest.approx(y.mean(), abs=1e-9)
    assert run["result"]["train_n"] == {"secure sum": float(len(y))}


def test_registering_another_class_under_a_taken_id_is_refused() -> None:
    class Impostor(Prevalence):
        id = "logreg"

    with pytest.raises(ConfigError, match="already registered"):
        register(Impostor)
    with pytest.raises(ConfigError, match="not a fedsante Algorithm"):
        register(object())  # type: ignore[arg-type]


def test_unknown_parameters_of_a_plugin_are_refused_by_name() -> None:
    with pytest.raises(Exception, match="params.bogus"):
        Prevalence().parameters({"bogus": 1})


def test_fedprox_runs_end_to_end_and_differs_from_fedavg() -> None:
    # Prepare
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian")}
    base = {"privacy": "none", "scaling": "global", "rounds": 3, "membership_check": False, "batch_size": 0}

    # Execute
    avg = asyncio.run(simulate_study(tables, {**base, "strategy": "fedavg"}))
    prox = asyncio.run(simulate_study(tables, {**base, "strategy": "fedprox", "proximal_mu": 5.0}))

    # Assert: both complete; the proximal term pulls local models back, so the models differ
    assert avg["status"] == prox["status"] == "completed"
    a, p = (np.asarray(r["result"]["model"]["coef"]) for r in (avg, prox))
    assert not np.allclose(a, p)
    assert np.linalg.norm(p) < np.linalg.norm(a)  # smaller steps away from the zero start


def test_a_site_below_k_min_is_left_out_before_training_with_a_plain_reason() -> None:
    # Prepare: VA keeps only 6 of its test patients (fewer than k_min = 11); three hospitals remain
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian", "switzerland")}
    va = load_hospital("va")
    test_ids = [pid for pid, s in zip(va.patient_id, va.split) if s == "test"]
    tables["va"] = va.without(set(test_ids[6:]))

    # Execute
    run = asyncio.run(simulate_study(tables, {"privacy": "none", "rounds": 1, "membership_check": False}))

    # Assert: completed without VA, which never sent anything beyond its feasibility answer; no count named
    assert run["status"] == "completed"
    reason = run["result"]["left_out"]["va"]
    assert reason.endswith("has fewer than k_min = 11 patients among its test rows: left out.")
    assert "6" not in reason
    assert "va" not in run["result"]["node_metrics"]
    assert "switzerland" in run["result"]["notes"]  # one patient without the disease among its test rows


def test_a_layout_packs_and_unpacks_named_blocks_and_refuses_wrong_shapes() -> None:
    from fedsante.federation.layout import Layout

    layout = Layout.of({"coef": np.zeros(3), "intercept": np.zeros(1), "n": np.zeros(1)}, last=("n",))
    assert [name for name, _ in layout.fields] == ["coef", "intercept", "n"] and layout.size == 5
    vector = layout.pack({"coef": np.array([1.0, 2.0, 3.0]), "intercept": np.array([4.0]), "n": np.array([9.0])})
    assert vector.tolist() == [1.0, 2.0, 3.0, 4.0, 9.0]
    assert {k: v.tolist() for k, v in layout.unpack(vector * 2).items()} == {
        "coef": [2.0, 4.0, 6.0], "intercept": [8.0], "n": [18.0]}
    with pytest.raises(ValueError, match="'coef' has shape \\[2\\]; the layout expects \\[3\\]"):
        layout.pack({"coef": np.zeros(2), "intercept": np.zeros(1), "n": np.zeros(1)})
    with pytest.raises(ValueError, match="has 5 values. Got shape \\[4\\]"):
        layout.unpack(np.zeros(4))
    with pytest.raises(ValueError, match="not part of the layout"):
        layout.pack({"coef": np.zeros(3), "intercept": np.zeros(1), "n": np.zeros(1), "extra": np.zeros(1)})


def test_a_run_with_fewer_than_two_feasible_sites_fails_at_once_and_spends_nothing(tmp_path) -> None:
    from fedsante.common.errors import RunFailed

    # Prepare: VA keeps 6 test patients; only Cleveland meets k_min (DP on: a release would be debited)
    va = load_hospital("va")
    test_ids = [pid for pid, s in zip(va.patient_id, va.split) if s == "test"]
    tables = {"cleveland": load_hospital("cleveland"), "va": va.without(set(test_ids[6:]))}

    # Execute
    with pytest.raises(RunFailed) as failed:
        asyncio.run(simulate_study(tables, {"rounds": 1}, work_dir=tmp_path))

    # Assert: the plain reason, no count, and no privacy debit in either hospital's chain
    message = str(failed.value)
    assert "cannot go on: 1 of 2 hospitals meet the approval's minimum counts, 2 needed" in message
    assert "va has fewer than k_min = 11 patients among its test rows: left out." in message
    assert "no privacy budget was spent" in message and " 6 " not in message
    for node in tables:
        chain = (tmp_path / "nodes" / node / "audit.jsonl").read_text()
        assert '"kind":"feasibility"' in chain and "privacy_debit" not in chain
