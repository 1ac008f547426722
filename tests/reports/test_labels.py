"""The trust report speaks the study's language: labels of features, groups and outcome, hospitals left out."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np

from fedsante.federation.result import RunResult
from fedsante.reports.performance import group_stats
from fedsante.reports.render import render_html, summary
from fedsante.reports.trust import build_report

from exact_run import exact  # noqa: F401  (fixture)


class _Cells(HTMLParser):
    """The visible text of every table cell (th and td), outside SVG figures."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self._depth, self._svg = 0, 0

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self._svg += 1
        if tag in ("th", "td") and not self._svg:
            self._depth += 1
            self.cells.append("")

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg -= 1
        if tag in ("th", "td") and self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.cells[-1] += data


def cells(page: str) -> list[str]:
    parser = _Cells()
    parser.feed(page)
    return [c.strip() for c in parser.cells]


def section(page: str, start: str, end: str) -> str:
    return page[page.index(f'id="{start}"'):page.index(f'id="{end}"')]


def test_heart_report_shows_the_studys_labels_not_raw_codes(exact) -> None:
    # Prepare
    _, run, report = exact
    # Execute
    fr, en = render_html(report, "fr"), render_html(report, "en")
    # Assert
    visible_fr = cells(fr)
    assert "Âge (ans)" in visible_fr and "Type de douleur thoracique : 4" in visible_fr
    assert any(c.startswith("Age (") for c in cells(en)) and "Chest pain type: 4" in cells(en)
    raw = set(run["result"]["features"]) - {"age", "sex"}  # 'age' and 'sex' are words of the page too
    assert not any(code in cell for cell in visible_fr for code in raw), [c for c in visible_fr if "=" in c]
    assert "Performances par sexe" in section(fr, "fairness", "explanation") and "Femmes" in visible_fr and "Hommes" in visible_fr
    assert "female" not in cells(section(fr, "fairness", "explanation"))
    rows = {row["feature"]: row for row in report["explanation"]["features"]}  # the JSON keeps the raw names
    assert rows["cp=4"]["labels"] == {"en": "Chest pain type: 4", "fr": "Type de douleur thoracique : 4"}
    assert {"feature", "labels", "importance"} <= set(report["explanation"]["permutation_importance"]["features"][0])
    outcome = report["run"]["study"]["outcome"]
    assert html.escape(outcome["fr"]) in fr and html.escape(outcome["en"]) in en
    assert outcome["fr"] in summary(report, "fr")


def test_the_summary_names_factors_by_their_labels(exact) -> None:
    _, _, report = exact
    top = report["explanation"]["features"][0]
    assert top["labels"]["fr"] in summary(report, "fr")
    assert top["labels"]["en"] in summary(report, "en")
    assert f" {top['feature']} (" not in summary(report, "fr") or top["feature"] == top["labels"]["fr"]


def _other_study_result() -> dict:
    """A result of another study (variables bmi, smoker; attribute 'setting'), built by hand."""
    rng = np.random.default_rng(3)
    stats = []
    for _ in range(2):
        y = rng.integers(0, 2, 80)
        stats.append(group_stats(y, np.clip(0.3 * y + 0.35 + rng.normal(0, 0.1, 80), 0.01, 0.99)).as_vector().tolist())
    return RunResult(
        model={"coef": [0.8, -0.4], "intercept": [0.1]}, scaler={"mean": [27.0, 0.3], "scale": [4.0, 0.45]},
        features=["bmi", "smoker=yes"],
        feature_labels={"fr": ["Indice de masse corporelle (kg/m²)", "Fumeur : oui"],
                        "en": ["Body mass index (kg/m²)", "Smoker: yes"]},
        study={"id": "frailty", "sha256": "0" * 64, "title_fr": "Fragilité", "title_en": "Frailty",
               "outcome_fr": "Décès à 30 jours", "outcome_en": "Death within 30 days"},
        node_metrics={"north": {"n": 80.0}, "south": {"n": 80.0}, "east": {"n": 0.0}},
        node_stats={"north": stats[0], "south": stats[1]},
        subgroup_stats=stats, subgroup_sites=["north", "south"],
        fairness={"threshold": 0.1, "attributes": [
            {"name": "setting", "feature": "setting", "label_fr": "Lieu de vie", "label_en": "Setting",
             "groups": ["urban", "rural"], "group_labels": {"fr": ["Ville", ""], "en": ["Town", ""]}}]},
        left_out={"east": "Hôpital Est has fewer than k_min = 11 patients among its test rows: left out."},
        left_out_codes={"east": "test_rows"},
    ).model_dump(mode="json")


def _other_report() -> dict:
    run = {"id": "r9", "status": "completed", "algorithm_id": "logreg", "algorithm_version": "1", "code_hash": "c" * 64,
           "nodes": ["north", "south", "east"], "rounds": 2, "approval_id": "P-1-v1", "privacy": {},
           "result": _other_study_result()}
    nodes = {"north": {"hospital_name": "Hôpital Nord"}, "south": {"hospital_name": "Hôpital Sud"},
             "east": {"hospital_name": "Hôpital Est"}}
    return build_report(run, nodes, {"title": "Fragilité"})


def test_another_studys_labels_and_groups_are_rendered() -> None:
    report = _other_report()
    fr, en = render_html(report, "fr"), render_html(report, "en")
    assert {"Indice de masse corporelle (kg/m²)", "Fumeur : oui", "Ville", "rural"} <= set(cells(fr))
    assert {"Body mass index (kg/m²)", "Smoker: yes", "Town", "rural"} <= set(cells(en))  # no label: the group's name
    assert "Performances par lieu de vie" in fr and "Performance by setting" in en
    assert "Décès à 30 jours" in fr and "Death within 30 days" in en
    assert not any(code in cell for cell in cells(fr) for code in ("bmi", "smoker=yes"))
    assert "(par lieu de vie)" in summary(report, "fr")


def test_a_left_out_hospital_is_named_with_its_reason_in_both_languages() -> None:
    report = _other_report()
    (entry,) = report["participation"]["left_out"]
    assert entry["node"] == "east" and entry["code"] == "test_rows"
    fr, en = render_html(report, "fr"), render_html(report, "en")
    assert ("Hôpital Est compte moins de k_min = 11 patients parmi ses lignes de test : il est écarté de "
            "l&#39;analyse.") in fr
    assert "Hôpital Est has fewer than k_min = 11 patients among its test rows: left out." in en
    assert "Hôpitaux écartés de cette exécution" in fr and "Hospitals left out of this run" in en
    assert re.search(r"Des hôpitaux ont été écartés de cette analyse : Hôpital Est compte", summary(report, "fr"))
    assert "Some hospitals were left out of this run: Hôpital Est has" in summary(report, "en")


def test_a_report_without_left_out_hospitals_says_nothing_of_them(exact) -> None:
    _, _, report = exact
    assert report["participation"]["left_out"] == []
    assert "Hôpitaux écartés" not in render_html(report, "fr") and "écartés" not in summary(report, "fr")
