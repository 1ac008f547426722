"""The protocol in one process: same numbers as the pure algorithm, only aggregates at the desk."""

import asyncio

import numpy as np
import pytest

from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.sim.simulation import simulate_study
from fedsante.learning.logistic import init_params, predict_proba
from fedsante.learning.scaling import Moments, Scaler, combine
from fedsante.reports.metrics import accuracy
from fedsante.reports.performance import GroupStats, auc, group_stats
from fedsante.learning.strategies import FedAvg, sum_params
from fedsante.algorithms.logreg.node import execute


@pytest.fixture(scope="module")
def tables():
    return {h: load_hospital(h) for h in HOSPITALS}


def test_federated_run_equals_the_same_fedavg_computed_directly(tables) -> None:
    # Prepare
    params = LogRegParams(rounds=3, seed=7, privacy="none", scaling="global", l2=1.0)
    settings = params.model_dump()

    # Execute
    run = asyncio.run(simulate_study(tables, settings))

    # Assert: redo moments, 3 rounds and FedAvg without any protocol in between
    scaler = combine([Moments.of(t.part("train")[0]) for t in tables.values()])
    model = init_params(13)
    for r in range(1, 4):
        arrays = {**model, "mean": scaler.mean, "scale": scaler.scale}
        replies = [execute("fit", settings, arrays, t, node_id=h, round_number=r) for h, t in tables.items()]
        model = FedAvg().aggregate_fit(model, sum_params([a for a, _ in replies]), sum(m["n"] for _, m in replies))
    # Secure aggregation adds only its field quantisation: each summed coordinate is within
    # n_nodes * step / 2 of the exact sum (quantize.py): the scales move by < 1e-6 relative, the model by < 1e-6.
    from fedsante.federation.secure import BITS, SUM_CLIP
    from fedsante.privacy.quantize import step

    assert run["status"] == "completed"
    n_total = sum(len(t.part("train")[1]) for t in tables.values())
    mean_bound = len(tables) * step(SUM_CLIP, BITS, len(tables)) / 2 / n_total
    assert np.max(np.abs(np.array(run["result"]["scaler"]["mean"]) - scaler.mean)) <= mean_bound
    np.testing.assert_allclose(run["result"]["scaler"]["scale"], scaler.scale, rtol=1e-6)
    np.testing.assert_allclose(run["result"]["model"]["coef"], model["coef"], rtol=0, atol=1e-6)

    # The evaluation statistics summed over hospitals equal those of the pooled predictions of the released model
    released = {k: np.array(v) for k, v in run["result"]["model"].items()}
    run_scaler = Scaler(mean=np.array(run["result"]["scaler"]["mean"]), scale=np.array(run["result"]["scaler"]["scale"]))
    shared = run["result"]["node_stats"]
    assert set(shared) == {"cleveland", "hungarian"}  # Switzerland and VA: a class under k_min, withheld
    y = np.concatenate([tables[h].part("test")[1] for h in shared])
    p = np.concatenate([predict_proba(released, run_scaler.transform(tables[h].part("test")[0])) for h in shared])
    summed = sum(GroupStats.from_vector(np.array(v)) for v in shared.values())
    np.testing.assert_allclose(summed.as_vector(), group_stats(y, p).as_vector(), rtol=1e-12, atol=1e-9)
    assert abs(auc(summed) - auc(group_stats(y, p))) < 1e-12


def test_default_study_is_private_within_its_approval_and_reaches_the_accuracy_floor(tables) -> None:
    run = asyncio.run(simulate_study(tables, {}))

    result, privacy = run["result"], run["privacy"]
    model = {k: np.array(v) for k, v in result["model"].items()}
    scaler = Scaler(mean=np.array(result["scaler"]["mean"]), scale=np.array(result["scaler"]["scale"]))
    exact = [accuracy(y, predict_proba(model, scaler.transform(np.clip(X, *t.bounds))))
             for t in tables.values() for X, y in [t.part("test")]]
    assert np.mean(exact) >= 0.74  # one draw; the >= 0.76 target is a mean over repeats (bench heart --dp): 0.797 +- 0.012
    assert privacy["mechanism"] == "record" and 0.99 <= privacy["epsilon"] <= privacy["approved_epsilon"] == 1.0
    metrics = result["node_metrics"]
    assert {m["n"] for m in metrics.values()} == {104, 89, 16, 45}  # row counts are public; the rest is noised
    assert all(m["noise_sd"] > 1 and 0 <= m["accuracy"] <= 1 for m in metrics.values())
    assert all("membership_auc" in m or m["n"] < 30 for m in metrics.values())


def test_flamby_protocol_uses_each_nodes_own_scaling(tables) -> None:
    run = asyncio.run(simulate_study(tables, {"seed": 42, "scaling": "local", "rounds": 5, "privacy": "none"}))

    assert run["status"] == "completed"
    assert run["result"]["scaler"] is None


def test_a_node_with_a_bad_parameter_fails_the_run_with_its_reason(tables, monkeypatch) -> None:
    from fedsante.common.errors import RunFailed
    from fedsante.node import agent

    real = agent.installed()
    changed = {k: v.model_copy(update={"code_hash": "f" * 64}) for k, v in real.items()}
    monkeypatch.setattr(agent, "installed", lambda: changed)

    with pytest.raises(RunFailed, match="node cleveland refused the task: .*code hash .* differs from the installed"):
        asyncio.run(simulate_study({"cleveland": tables["cleveland"], "va": tables["va"]}, {"rounds": 1}))


def test_the_desk_only_ever_receives_masked_statistics_and_updates(tables, monkeypatch) -> None:
    from fedsante.desk.runs import RunService

    seen = []
    original = RunService._on_event

    def spy(self, plan, kind, data):
        if kind == "result":
            seen.append((data["task"].kind, data["result"]))
        return original(self, plan, kind, data)

    monkeypatch.setattr(RunService, "_on_event", spy)
    run = asyncio.run(simulate_study(tables, {"rounds": 2, "scaling": "global"}))  # DP moments too

    assert run["status"] == "completed"
    masked = [result for kind, result in seen if kind in ("moments", "fit", "subgroups")]
    assert len(masked) == (1 + 2 + 1) * len(tables)  # the standardisation statistics, 2 rounds, the subgroups
    for result in masked:  # no plain array, no per-node count: only a masked vector
        assert result.arrays == {} and "n" not in result.metrics and set(result.payload) == {"masked"}
    kinds = [kind for kind, _ in seen]
    assert kinds.count("secagg_keys") == kinds.count("secagg_shares") == len(tables)  # set up once per run
    assert kinds.count("secagg_unmask") == 4 * len(tables)  # one unmasking per masked stage
    assert run["result"]["train_n"] == {"secure sum": sum(len(t.part("train")[1]) for t in tables.values())}


def test_client_level_dp_fedavg_counts_each_hospital_once_and_spends_its_budget(tables) -> None:
    run = asyncio.run(simulate_study(tables, {"privacy": "client", "rounds": 3}))

    assert run["status"] == "completed"
    assert run["params"]["noise_shares"] == 3  # the secure aggregation threshold of 4 nodes
    assert run["result"]["train_n"] == {"secure sum": 4.0}  # each hospital weighs 1
    privacy = run["privacy"]
    assert privacy["mechanism"] == "client" and privacy["epsilon"] <= 1.0
    assert [line["release"] for line in privacy["ledger"]][:2] == ["dp-fedavg", "evaluation"]
