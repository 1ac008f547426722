"""Fairness by subgroup and permutation importance in the trust report, against centralised computations."""

from __future__ import annotations

import asyncio
import json
import math
import re
import zlib

import numpy as np
import pytest
from exact_run import NODES, exact, predictions  # noqa: F401  (exact: fixture)

from fedsante.data.heart import load_hospital
from fedsante.learning.scaling import Scaler
from fedsante.reports.explain import permutation_importance
from fedsante.reports.fairness import AGE, SEX, masks
from fedsante.reports.performance import group_stats, summary
from fedsante.reports.render import write_report
from fedsante.reports.trust import build_report
from fedsante.sim.simulation import simulate_study

ATTRIBUTES = {"sex": SEX, "age": AGE}


def test_each_subgroup_equals_the_centralised_computation_over_the_hospitals(exact) -> None:
    tables, run, report = exact
    fairness = report["fairness"]
    assert fairness["sites"] == sorted(tables)  # every hospital took part in the secure sum
    for attribute in fairness["attributes"]:
        for label, group in attribute["groups"].items():
            ys, ps = [], []
            for node in fairness["sites"]:
                y, p = predictions(run, tables[node])
                mask = masks(tables[node].part("test")[0], tables[node].feature_names, ATTRIBUTES[attribute["name"]])
                ys.append(y[mask[label]])
                ps.append(p[mask[label]])
            central = summary(group_stats(np.concatenate(ys), np.concatenate(ps)))
            assert group["metrics"] is not None, label  # over four hospitals every group has 11 of each class
            for key in ("n", "n_positive", "auc", "accuracy", "sensitivity", "specificity", "ppv", "oe_ratio", "brier"):
                # secure aggregation sums fixed-point numbers: exact counts, sums to about 1e-9
                assert math.isclose(group["metrics"][key], central[key], rel_tol=1e-7, abs_tol=1e-9), (label, key)


def test_only_the_sums_over_hospitals_reach_the_desk_so_a_group_small_everywhere_can_be_shown(exact) -> None:
    tables, run, report = exact
    result = run["result"]
    assert all(set(e) == {"importance"} for e in result["node_evaluation"].values())  # nothing per subgroup
    women = []
    for table in tables.values():
        X, y = table.part("test")
        female = masks(X, table.feature_names, SEX)["female"]
        women.append((int(female.sum()), int(y[female].sum())))
    assert all(positive < 11 for _, positive in women)  # too few women with the disease at every hospital
    shown = next(a for a in report["fairness"]["attributes"] if a["name"] == "sex")["groups"]["female"]["metrics"]
    assert (shown["n"], shown["n_positive"]) == (sum(n for n, _ in women), sum(p for _, p in women)) == (56, 15)


@pytest.fixture(scope="module")
def two_hospitals():
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian")}
    run = asyncio.run(simulate_study(tables, {"privacy": "none", "rounds": 1, "membership_check": False}))
    return run, build_report(run, NODES)


def test_a_subgroup_under_k_min_over_all_hospitals_is_suppressed_with_its_complement(two_hospitals) -> None:
    _, report = two_hospitals
    age = next(a for a in report["fairness"]["attributes"] if a["name"] == "age")["groups"]
    assert age[">=65"]["metrics"] is None and "k_min" in age[">=65"]["reason"]  # 15 patients, 5 with the disease
    secondary = [label for label, g in age.items() if g["metrics"] is None and "secondary" in (g["reason"] or "")]
    assert len(secondary) == 1  # with the total known, one more band hides the first by subtraction
    assert sum(g["metrics"] is None for g in age.values()) == 2


def test_a_suppressed_subgroup_shows_no_number_in_html_or_json(two_hospitals, tmp_path) -> None:
    _, report = two_hospitals
    paths = write_report(report, tmp_path)
    written = json.loads(paths["json"].read_text(encoding="utf-8"))
    age = next(a for a in written["fairness"]["attributes"] if a["name"] == "age")
    assert age["groups"][">=65"]["metrics"] is None and "k_min" in age["groups"][">=65"]["reason"]
    assert "noise_sd" not in age["groups"][">=65"] and "counts" not in age["groups"][">=65"]
    shown = next(g["metrics"] for g in age["groups"].values() if g["metrics"] is not None)
    for lang, word, group in (("html", "suppressed", "65 and over"), ("html_fr", "masqué", "65 ans et plus")):
        html = paths[lang].read_text(encoding="utf-8")
        table = html[html.index('id="fairness"'):html.index('id="explanation"')]
        assert "&gt;=65" not in table  # the study's label of the group, not its name
        row = table[table.index(group):].split("</tr>")[0]
        cells = re.sub(r"<[^>]+>", " ", row.split("</th>")[-1]).replace("k_min = 11", "")
        assert word in cells and not any(ch.isdigit() for ch in cells)
        assert f"{shown['auc']:.2f}" in table


def test_permutation_importance_matches_each_hospitals_local_computation(exact) -> None:
    tables, run, report = exact
    result = run["result"]
    model = {k: np.array(v) for k, v in result["model"].items()}
    scaler = Scaler(mean=np.array(result["scaler"]["mean"]), scale=np.array(result["scaler"]["scale"]))
    values, counts = [], []
    for node, table in tables.items():
        X, y = table.part("test")
        local = permutation_importance(model, scaler.transform(X), y, repeats=5,
                                       rng=np.random.default_rng(42 * 1_000_003 + zlib.crc32(node.encode())))
        np.testing.assert_allclose(result["node_evaluation"][node]["importance"], local, rtol=1e-12, atol=1e-15)
        values.append(local)
        counts.append(len(y))
    pooled = np.average(values, axis=0, weights=counts)
    rows = report["explanation"]["permutation_importance"]["features"]
    got = {row["feature"]: row["importance"] for row in rows}
    for name, value in zip(result["features"], pooled):
        assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-15), name
    assert [row["importance"] for row in rows] == sorted(got.values(), reverse=True)
    assert rows[0]["importance"] > 0.01  # the model relies on something


@pytest.fixture(scope="module")
def private_report():
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian")}
    run = asyncio.run(simulate_study(tables, {"rounds": 2}))
    return run, build_report(run, NODES)


def test_under_dp_subgroups_carry_their_noise_and_only_gaps_beyond_it_are_flagged(private_report) -> None:
    run, report = private_report
    fairness = report["fairness"]
    sigma = run["params"]["evaluation_noise_multiplier"]
    assert fairness["noise_sd"] == pytest.approx(sigma * math.sqrt(2))  # one count per attribute, summed once
    assert run["result"]["node_metrics"]["cleveland"]["noise_sd"] == pytest.approx(sigma)  # the hospital's own
    assert run["params"]["noise_shares"] == 2  # each of the 2 hospitals adds half the variance
    for attribute in fairness["attributes"]:
        for group in attribute["groups"].values():
            if group["metrics"] is not None:
                assert group["noise_sd"]["auc"] > 0
        for metric, gap in attribute["gaps"].items():
            if gap["gap"] is not None and gap["gap"] > fairness["threshold"]:
                high, low = gap["groups"]
                sd = math.hypot(attribute["groups"][high]["noise_sd"][metric] or math.nan,
                                attribute["groups"][low]["noise_sd"][metric] or math.nan)
                flagged = any(s.startswith(("AUC", "Accuracy", "Sensitivity", "Specificity", "Positive", "The obs"))
                              and metric_name(metric) in s for s in attribute["flags"])
                assert flagged == (gap["gap"] - fairness["threshold"] > 1.96 * sd)
                assert flagged or metric in attribute["within_noise"]
    assert report["explanation"]["permutation_importance"] is None  # exact runs only


def metric_name(metric: str) -> str:
    return {"auc": "AUC", "accuracy": "Accuracy", "sensitivity": "Sensitivity", "specificity": "Specificity",
            "ppv": "Positive predictive value", "oe_ratio": "observed/expected"}[metric]


def test_a_run_can_describe_other_attributes_or_none() -> None:
    tables = {h: load_hospital(h) for h in ("cleveland", "hungarian")}
    run = asyncio.run(simulate_study(tables, {"privacy": "none", "rounds": 1, "fairness_attributes": "age",
                                              "membership_check": False}))
    assert [a["name"] for a in run["result"]["fairness"]["attributes"]] == ["age"]
    assert len(run["result"]["subgroup_stats"]) == 4
    run = asyncio.run(simulate_study(tables, {"privacy": "none", "rounds": 1, "fairness_attributes": "",
                                              "membership_check": False}))
    assert build_report(run, NODES)["fairness"] is None


@pytest.mark.parametrize("value, message", [("Ethnicity!", "String should match pattern"),
                                            ("sex,sex", "names an attribute twice")])
def test_bad_fairness_attributes_are_refused(value, message) -> None:
    from pydantic import ValidationError

    from fedsante.algorithms.logreg.params import LogRegParams

    with pytest.raises(ValidationError, match=message):
        LogRegParams(fairness_attributes=value)
    assert LogRegParams(fairness_attributes=" age , sex ").attribute_names == ["age", "sex"]


def test_the_plain_summary_says_whether_groups_of_patients_fared_alike(exact) -> None:
    import copy

    from fedsante.reports.render import summary

    _, _, report = exact
    flagged = [a["name"] for a in report["fairness"]["attributes"] if a["flags"]]
    assert flagged == ["sex", "age"]  # e.g. sensitivity 0.60 under 45 against 0.87 at 55-64, over the four hospitals
    assert ("differed between groups of patients (by sex and by age) by more than the charter allows"
            in summary(report, "en"))
    assert "(par sexe et par âge)" in summary(report, "fr")
    alike = copy.deepcopy(report)
    for attribute in alike["fairness"]["attributes"]:
        attribute["flags"] = []
    assert ("similar across the groups of patients that could be compared (by sex and by age), within the "
            "charter's tolerance.") in summary(alike, "en")
    alike["fairness"]["attributes"][0]["within_noise"] = ["auc"]
    assert "Differences between groups of patients (by sex) cannot be told apart from the privacy noise." in summary(
        alike, "en")
    alike["fairness"] = None
    assert "groups of patients" not in summary(alike, "en")


def test_under_dp_performance_carries_its_noise_and_the_summary_claims_only_what_it_can_see(private_report,
                                                                                           exact) -> None:
    import copy

    from fedsante.reports.render import render_html, summary

    _, report = private_report
    pooled = report["performance"]["pooled"]
    assert pooled["noise_sd"]["auc"] > 0 and report["performance"]["hospitals"]["cleveland"]["noise_sd"]["auc"] > 0
    assert " ± " in render_html(report, "en").split('id="performance"')[1].split("</table>")[0]
    assert "for the privacy noise" in summary(report, "en")
    _, _, exact_report = exact
    assert "noise_sd" not in exact_report["performance"]["pooled"] and " ± " not in render_html(exact_report, "en")
    # a hospital 0.10 below all hospitals: named when the noise is small, not when it could explain the gap
    crafted = copy.deepcopy(exact_report)
    perf = crafted["performance"]
    perf["hospitals"]["hungarian"]["metrics"]["auc"] = perf["pooled"]["metrics"]["auc"] - 0.10
    for group in (perf["pooled"], perf["hospitals"]["cleveland"], perf["hospitals"]["hungarian"]):
        group["noise_sd"] = {"auc": 0.01, "oe_ratio": 0.01}
    assert "did less well for the patients of Hungarian Institute" in summary(crafted, "en")
    for group in (perf["pooled"], perf["hospitals"]["cleveland"], perf["hospitals"]["hungarian"]):
        group["noise_sd"] = {"auc": 0.08, "oe_ratio": 0.5}
    text = summary(crafted, "en")
    assert "cannot be told apart from the privacy noise" in text and "did less well" not in text
    assert "cannot be told through the privacy noise" in text  # O/E 0.92 +- 0.5
