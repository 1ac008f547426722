"""fedsante.reports.render: the trust report as self-contained HTML (en, fr), plain-language summaries, files."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from fedsante.reports.plots import auc_forest_svg, coefficients_svg, reliability_svg
from fedsante.reports.render import render_html, summary, write_report

HEADINGS = {"en": ["In plain language", "Performance", "Calibration", "Explanation", "Privacy", "Model card",
                   "Limitations"],
            "fr": ["En langage clair", "Performances", "Calibration", "Explication", "Confidentialité",
                   "Fiche du modèle", "Limites"]}
SUPPRESSED = {"en": "suppressed (fewer than k_min = 11 patients in a group or class)",
              "fr": "masqué (moins de k_min = 11 patients dans un groupe ou une classe)"}
LABELS = ["Cleveland Clinic", "Hungarian Institute of Cardiology", "University Hospital Zurich", "VA Long Beach"]
SECRET = 0.4242  # only in the suppressed hospital's entry: must never be shown


def reliability(shift: float, n: float) -> list[dict]:
    rows = []
    for k in range(10):
        low, high = k / 10, (k + 1) / 10
        count = 0.0 if k == 9 else n * (0.06 + 0.01 * (k % 4))
        rows.append({"bin_low": low, "bin_high": high, "n": count,
                     "mean_predicted": None if count == 0 else low + 0.05,
                     "observed_rate": None if count == 0 else min(1.0, max(0.0, low + 0.05 + shift * (k - 4.5) / 10))})
    return rows


def metrics(auc: float, n: float, n_pos: float, *, oe: float = 1.03, slope: float = 0.94, shift: float = 0.02) -> dict:
    return {"n": n, "n_positive": n_pos, "accuracy": auc - 0.04, "auc": auc, "auc_ci_low": auc - 0.05,
            "auc_ci_high": min(1.0, auc + 0.05), "brier": round(0.33 - 0.2 * auc, 4), "scaled_brier": 0.34,
            "oe_ratio": oe, "calibration_intercept": 0.04, "calibration_slope": slope, "sensitivity": 0.83,
            "specificity": 0.76, "ppv": 0.79, "npv": 0.8, "reliability": reliability(shift, n)}


SUPPRESSION = "suppressed: fewer than k_min = 11 patients in the group or one of its outcome classes"


def make_report() -> dict:
    """A realistic report of four UCI Heart Disease hospitals; Zurich is suppressed (with leftover numbers)."""
    hospitals = {
        "cleveland": {"label": LABELS[0], "territory": "USA", "metrics": metrics(0.86, 91.0, 41.0, shift=0.12),
                      "reason": None},
        "hungarian": {"label": LABELS[1], "territory": "Hungary",
                      "metrics": metrics(0.84, 88.3, 32.6, oe=0.97, shift=-0.1), "reason": None},
        "switzerland": {"label": LABELS[2], "territory": "Switzerland",
                        "metrics": {**metrics(SECRET, 4242.0, 7.0), "accuracy": SECRET}, "reason": SUPPRESSION},
        "va": {"label": LABELS[3], "territory": "USA",
               "metrics": metrics(0.71, 60.2, 45.1, oe=1.12, slope=0.71, shift=0.3), "reason": None},
    }
    return {
        "schema": "fedsante-trust-report/1",
        "run": {"id": "01c5f3a2-7d1e-4b9a-9f0e-6a2b8c4d1e7f", "project": "RAIH-2026-0001",
                "title": "Prédire une maladie coronarienne à partir de 13 variables cliniques",
                "algorithm": "logreg 0.1.0", "code_hash": "b9ab" * 16, "nodes": list(hospitals), "rounds": 15,
                "finished_at": "2026-03-14T10:21:07+00:00", "k_min": 11},
        "model_card": {"items": [
            {"item": "1 Title", "text": "Prédire une maladie coronarienne à partir de 13 variables cliniques"},
            {"item": "3b Target population and intended users",
             "text": "Adults referred for angiography; cardiologists."},
            {"item": "5a Data sources", "text": "Cleveland Clinic (USA), VA Long Beach (USA), ..."},
            {"item": "Privacy", "text": "differential privacy epsilon = 1 per hospital"}]},
        "performance": {
            "pooled": {"label": "all hospitals", "sites": ["cleveland", "hungarian", "va"],
                       "metrics": metrics(0.82, 239.5, 118.7), "reason": None},
            "hospitals": hospitals,
            "territories": {
                "USA": {"sites": ["cleveland", "va"], "metrics": metrics(0.8, 151.2, 86.1), "reason": None},
                "Hungary": {"sites": ["hungarian"], "metrics": metrics(0.84, 88.3, 32.6, oe=0.97), "reason": None},
                "Switzerland": {"sites": ["switzerland"], "metrics": None, "reason": SUPPRESSION}}},
        "explanation": {"method": "Exact coefficients of the released model.", "features": [
            {"feature": "cp", "coef": 0.71, "odds_ratio_per_unit": 1.96, "odds_ratio_per_scale_unit": 2.03,
             "direction": "raises risk"},
            {"feature": "thalach", "coef": -0.52, "odds_ratio_per_unit": 0.98, "odds_ratio_per_scale_unit": 0.59,
             "direction": "lowers risk"},
            {"feature": "oldpeak", "coef": 0.44, "odds_ratio_per_unit": 1.45, "odds_ratio_per_scale_unit": 1.55,
             "direction": "raises risk"},
            {"feature": "age", "coef": 0.31, "odds_ratio_per_unit": 1.02, "odds_ratio_per_scale_unit": 1.36,
             "direction": "raises risk"},
            {"feature": "chol", "coef": 0.0, "odds_ratio_per_unit": 1.0, "odds_ratio_per_scale_unit": 1.0,
             "direction": "no effect"}]},
        "privacy": {"mechanism": "record", "epsilon": 0.99, "delta": 1e-5, "approved_epsilon": 1.0,
                    "ledger": [{"release": "dp-sgd", "rows": "train", "epsilon_alone": 0.97, "delta": 1e-5},
                               {"release": "evaluation statistics", "rows": "test", "epsilon_alone": 0.31,
                                "delta": 1e-5}],
                    "membership": {"ceiling": 0.731, "hospitals": {
                        "cleveland": {"auc": 0.51, "noise_sd": 0.033}, "hungarian": {"auc": 0.49, "noise_sd": 0.034},
                        "switzerland": {"auc": 0.55, "noise_sd": 0.09}, "va": {"auc": 0.52, "noise_sd": 0.041}}},
                    "noise_sd": 4.07},
        "limitations": ["Performance figures carry noise under differential privacy.",
                        "Binned AUC and calibration approximate the per-patient values."],
    }


class Checker(HTMLParser):
    """Balanced tags, every img with alt, every figure with a figcaption, every th with scope, unique ids."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.figures: list[dict] = []
        self.html_lang: str | None = None

    def handle_starttag(self, tag, attrs, selfclosing=False) -> None:
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "html":
            self.html_lang = attrs.get("lang")
        if tag == "img" and not attrs.get("alt"):
            self.errors.append(f"img without alt: {attrs}")
        if tag == "th" and not attrs.get("scope"):
            self.errors.append("th without scope")
        if tag == "figure":
            self.figures.append({"caption": False, "svg": 0})
        if tag == "figcaption" and self.figures:
            self.figures[-1]["caption"] = True
        if tag == "svg" and self.figures:
            self.figures[-1]["svg"] += 1
        if tag not in self.VOID and not selfclosing:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs) -> None:
        self.handle_starttag(tag, attrs, selfclosing=True)

    def handle_endtag(self, tag) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def check_html(page: str) -> Checker:
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert checker.stack == [], checker.stack
    duplicates = {i for i in checker.ids if checker.ids.count(i) > 1}
    assert not duplicates, sorted(duplicates)[:5]
    return checker


def svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    report = make_report()
    return {lang: render_html(report, lang) for lang in ("en", "fr")}


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_page_has_sections_labels_and_three_accessible_figures(pages, lang) -> None:
    page = pages[lang]
    for heading in HEADINGS[lang]:
        assert re.search(rf"<h2 id=\"\w+\">{re.escape(heading)}</h2>", page), heading
    for label in LABELS:
        assert label in page
    checker = check_html(page)
    assert checker.html_lang == lang and f'<html lang="{lang}">' in page
    figures = svgs(page)
    assert len(figures) == 3 and page.count("<svg") == 3
    assert len(checker.figures) == 3 and all(f["caption"] and f["svg"] == 1 for f in checker.figures)
    for svg in figures:
        assert 'role="img"' in svg and "aria-label=" in svg and "<title>" in svg
        assert len(svg.encode()) < 60_000
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert "<script" not in page and "<link" not in page and "http" not in page


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_suppressed_group_shows_the_notice_and_none_of_its_numbers(pages, lang) -> None:
    page = pages[lang]
    assert SUPPRESSED[lang] in page
    row = re.search(rf"<tr><th scope=\"row\">{LABELS[2]}.*?</tr>", page, flags=re.S).group(0)
    assert SUPPRESSED[lang] in row and "<td" in row and row.count("<td") == 1
    text = re.sub(r"<svg\b.*?</svg>", "", page, flags=re.S)
    assert "4242" not in text and "0.42" not in text and "0,42" not in text
    forest, calibration, _ = svgs(page)
    assert LABELS[2] not in forest and LABELS[2] not in calibration
    assert LABELS[3] in forest and LABELS[3] in calibration
    assert "USA" in forest and "Hungary" not in forest  # a one-hospital territory repeats its hospital


def test_french_page_translates_fixed_texts_and_keeps_data_values(pages) -> None:
    fr, en = pages["fr"], pages["en"]
    assert "augmente le risque" in fr and "diminue le risque" in fr and "raises risk" not in fr
    assert "Adults referred for angiography; cardiologists." in fr  # model card text stays as given
    assert "Budget de confidentialité".lower() in fr.lower() and "privacy budget" in en
    assert "0.99" in fr and "0.731" in fr


def test_summaries_explain_auc_name_the_weakest_hospital_and_give_epsilon() -> None:
    report = make_report()
    fr, en = summary(report), summary(report, "en")
    assert summary(report, "fr") == fr
    for text in (fr, en):
        assert 4 <= len(re.findall(r"[.!?](?:\s|$)", text)) <= 7, text
        assert "ε = " in text and "VA Long Beach" in text and "University Hospital Zurich" in text
        assert "4242" not in text
    assert ("AUC (la probabilité que le modèle classe plus haut un patient malade qu'un patient non malade) est de "
            "0,82") in fr and fr.count("la probabilité que") == 1
    assert "ε = 0,99" in fr and "0,11 de moins" in fr and "cp (augmente le risque)" in fr
    assert "AUC (the probability that the model ranks" in en and "was 0.82" in en and "ε = 0.99" in en
    assert "(AUC 0.71, 0.11 below" in en and "thalach (lowers risk)" in en
    report["performance"]["hospitals"]["va"]["metrics"]["auc"] = 0.79  # 0.03 below all hospitals: not singled out
    assert "VA Long Beach (AUC" not in summary(report, "en") and "from 0.79 to 0.86" in summary(report, "en")
    assert "moins performant" not in summary(report)


def test_exact_run_without_territories_and_with_every_group_suppressed_still_renders() -> None:
    report = make_report()
    report["privacy"] = None
    report["performance"]["territories"] = {}
    report["performance"]["pooled"].update(metrics=None, reason=SUPPRESSION)
    for h in report["performance"]["hospitals"].values():
        h.update(metrics=None, reason=SUPPRESSION)
    for lang in ("en", "fr"):
        page = render_html(report, lang)
        check_html(page)
        assert page.count(SUPPRESSED[lang]) == 2 * 5  # two tables, pooled and four hospitals
        assert len(svgs(page)) == 3 and "0.86" not in page
        text = summary(report, lang)
        assert "ε" in text and "AUC" not in text and 4 <= len(re.findall(r"[.!?](?:\s|$)", text)) <= 7
    assert "exact" in render_html(report, "en") and "no privacy budget ε applies" in summary(report, "en")


def test_missing_and_nan_metrics_show_as_not_available() -> None:
    report = make_report()
    m = report["performance"]["pooled"]["metrics"]
    for key in m:
        m[key] = float("nan") if key != "reliability" else [dict(b, observed_rate=None) for b in m[key]]
    report["performance"]["hospitals"]["cleveland"]["metrics"] = {"n": 91.0}
    report["explanation"] = None
    report["model_card"] = {"items": []}
    report["privacy"]["membership"] = {"ceiling": None, "hospitals": {}}
    page = render_html(report, "en")
    check_html(page)
    assert not re.search(r"\bnan\b", page, flags=re.I) and "n/a [n/a, n/a]" in page
    text = summary(report, "en")
    assert not re.search(r"\bnan\b", text, flags=re.I) and "could not be measured" in text
    assert "overall AUC could not be computed" in text


def test_written_files_are_valid_nan_free_and_round_trip(tmp_path) -> None:
    report = make_report()
    report["performance"]["pooled"]["metrics"]["calibration_slope"] = float("nan")
    original = copy.deepcopy(report)
    paths = write_report(report, tmp_path / "out")
    assert {p.name for p in paths.values()} == {"trust-report.html", "trust-report.fr.html", "trust-report.json",
                                                "summary.fr.txt", "summary.en.txt"}
    assert all(p.parent == tmp_path / "out" and p.exists() for p in paths.values())
    text = paths["json"].read_text(encoding="utf-8")
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert loaded["performance"]["pooled"]["metrics"]["calibration_slope"] is None
    assert "Prédire" in text and "\\u00e9" not in text  # ensure_ascii=False keeps the accents
    assert json.loads(json.dumps(loaded, ensure_ascii=False, indent=2, allow_nan=False)) == loaded
    assert math.isnan(report["performance"]["pooled"]["metrics"]["calibration_slope"])  # input left untouched
    assert report.keys() == original.keys()
    assert 'lang="fr"' in paths["html_fr"].read_text(encoding="utf-8")
    assert paths["summary_fr"].read_text(encoding="utf-8") == summary(report, "fr") + "\n"


def test_rendering_is_deterministic(pages) -> None:
    report = make_report()
    assert render_html(report, "en") == pages["en"] and render_html(report, "fr") == pages["fr"]
    assert reliability_svg({"a": reliability(0.1, 50)}) == reliability_svg({"a": reliability(0.1, 50)})


def test_plots_skip_missing_values_and_stay_small() -> None:
    empty = [reliability_svg({}), auc_forest_svg([("x", None, None, None)]), coefficients_svg([])]
    assert all(s.startswith("<svg") and s.rstrip().endswith("</svg>") for s in empty)
    svg = auc_forest_svg([("pooled", 0.8, None, None), ("site", 0.7, 0.6, 0.8)], lang="fr")
    assert "AUC (0,5 = hasard)" in svg and len(svg) < 60_000
    with pytest.raises(ValueError, match="lang"):
        coefficients_svg([], lang="de")
    with pytest.raises(ValueError, match="schema"):
        render_html({"schema": "other/2"})


def test_page_screenshot_with_headless_chromium(tmp_path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium not installed")
    html = write_report(make_report(), tmp_path)["html"]
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,2400", f"--user-data-dir={tmp_path / 'profile'}", html.resolve().as_uri()],
                   check=True, timeout=60, capture_output=True)
    assert shot.exists() and shot.stat().st_size > 20_000
