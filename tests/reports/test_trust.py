"""The trust report's numbers against a centralised computation on the same data and the same model."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.learning.logistic import predict_proba
from fedsante.learning.scaling import Scaler
from fedsante.reports.performance import auc, brier, group_stats, summary
from fedsante.reports.trust import WITHHELD, build_report, project_reference
from fedsante.sim import lifecycle
from fedsante.sim.launcher import HOSPITAL_NAMES
from fedsante.sim.simulation import simulate_study

from exact_run import NODES, exact, predictions  # noqa: F401  (exact: fixture)

def test_per_hospital_and_pooled_figures_equal_the_centralised_ones(exact) -> None:
    tables, run, report = exact
    perf = report["performance"]
    for node in ("cleveland", "hungarian"):
        y, p = predictions(run, tables[node])
        central = summary(group_stats(y, p))
        got = perf["hospitals"][node]["metrics"]
        for key in ("auc", "accuracy", "brier", "oe_ratio", "calibration_slope", "auc_ci_low", "sensitivity"):
            assert math.isclose(got[key], central[key], rel_tol=1e-9, abs_tol=1e-12), key
    ys, ps = zip(*(predictions(run, tables[n]) for n in ("cleveland", "hungarian")))
    pooled = group_stats(np.concatenate(ys), np.concatenate(ps))
    assert perf["pooled"]["sites"] == ["cleveland", "hungarian"]
    assert abs(perf["pooled"]["metrics"]["auc"] - auc(pooled)) < 1e-9
    assert abs(perf["pooled"]["metrics"]["brier"] - brier(pooled)) < 1e-9
    assert perf["pooled"]["metrics"]["n"] == len(pooled_y := np.concatenate(ys)) and pooled_y.size == 193


def test_a_hospital_with_a_class_under_k_min_is_suppressed_everywhere_it_would_show(exact) -> None:
    _, _, report = exact
    perf = report["performance"]
    for node in ("switzerland", "va"):  # 1 and 10 test patients without the disease
        assert perf["hospitals"][node]["metrics"] is None and perf["hospitals"][node]["reason"] == WITHHELD
        territory = perf["territories"][NODES[node]["territory"]]
        assert territory["metrics"] is None  # its territory holds no other hospital
    assert perf["territories"]["Ohio, USA"]["metrics"]["auc"] == perf["hospitals"]["cleveland"]["metrics"]["auc"]


def test_explanation_is_the_released_models_coefficients(exact) -> None:
    _, run, report = exact
    rows = report["explanation"]["features"]
    coef = dict(zip(run["result"]["features"], run["result"]["model"]["coef"]))
    assert {r["feature"] for r in rows} == set(coef)
    assert [abs(r["coef"]) for r in rows] == sorted((abs(c) for c in coef.values()), reverse=True)
    for r in rows:
        assert math.isclose(r["odds_ratio_per_scale_unit"], math.exp(coef[r["feature"]]), rel_tol=1e-12)


def test_model_card_and_run_identity(exact) -> None:
    _, run, report = exact
    assert report["run"]["project"] == project_reference(run) and report["run"]["project"].startswith("RAIH-")
    items = {i["item"]: i["text"] for i in report["model_card"]["items"]}
    assert "Cleveland Clinic Foundation (Ohio, USA)" in items["5a Data sources"]
    assert items["Privacy"].startswith("no differential privacy")
    assert report["privacy"] is None  # an exact benchmark run


def test_a_private_run_reports_its_budget_and_membership_check() -> None:
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian")}
    run = asyncio.run(simulate_study(tables, {"rounds": 2}, energy=True))
    report = build_report(run, NODES)
    assert 0.99 <= report["privacy"]["epsilon"] <= 1.0 and report["privacy"]["noise_sd"] > 1
    # carbon: CodeCarbon's measure of each node's 2 fits, its evaluation and subgroups, plus the bytes it exchanged
    energy, carbon = run["result"]["energy"], report["carbon"]
    assert {node: [r["round"] for r in records] for node, records in energy.items()} == {
        "cleveland": [1, 2, 3, 4], "hungarian": [1, 2, 3, 4]}  # 2 fits, the evaluation, the subgroups' sum
    compute = sum(r["energy_kwh"] for records in energy.values() for r in records)
    assert math.isclose(carbon["totals"]["compute_kwh"], compute, rel_tol=1e-12) and compute > 0
    sent = sum(sum(b) for b in run["result"]["communication_bytes"].values())
    assert math.isclose(carbon["communication"]["gb"], sent / 1e9, rel_tol=1e-12)
    assert math.isclose(carbon["totals"]["kwh"], compute + carbon["communication"]["kwh"], rel_tol=1e-12)
    assert carbon["intensity"]["g_per_kwh"] == pytest.approx(56.039)  # France, codecarbon's offline table
    assert report["privacy"]["membership"]["ceiling"] == pytest.approx(0.731, abs=1e-3)
    assert set(report["privacy"]["membership"]["hospitals"]) == {"cleveland", "hungarian"}


def test_a_run_without_released_outputs_has_no_report() -> None:
    with pytest.raises(ValueError, match="has no released outputs"):
        build_report({"id": "r1", "status": "completed", "result": None}, NODES)


def test_the_rendered_report_shows_suppressed_groups_without_their_numbers(exact, tmp_path) -> None:
    import json

    from fedsante.reports.render import write_report

    _, _, report = exact
    paths = write_report(report, tmp_path)
    written = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert written["performance"]["hospitals"]["switzerland"]["metrics"] is None
    html = paths["html"].read_text(encoding="utf-8")
    table = html[html.index('id="performance"'):]
    row = table[table.index("University Hospitals of Zurich and Basel"):].split("</tr>")[0]
    assert "suppressed" in row and "0." not in row
    assert "masqué" in paths["html_fr"].read_text(encoding="utf-8")
    cleveland = report["performance"]["hospitals"]["cleveland"]["metrics"]
    assert f"{cleveland['auc']:.2f}" in html and cleveland["n"] == 104
