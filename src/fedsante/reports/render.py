"""The trust report (:mod:`fedsante.reports.trust`) as a self-contained HTML page and a plain-language summary.

The page has no external asset and no script: the figures are inline SVG (:mod:`fedsante.reports.plots`),
the style is inline. English and French share one template; only the headings and fixed texts are
translated, data values (labels, model card, limitations) stay as given. A group whose metrics are None
shows a suppression notice and nothing else. Rendering is deterministic (no clock, fixed SVG salt).
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from fedsante.reports._format import (LANGS, SCHEMA, TEXTS, checked, clean, direction, fmt, hospital_labels, label,
                                      lower_first, pm, shown)
from fedsante.reports.plots import auc_forest_svg, coefficients_svg, reliability_svg
from fedsante.reports.summary import summary

__all__ = ["LANGS", "SCHEMA", "clean", "render_html", "summary", "write_report"]

_env = Environment(loader=PackageLoader("fedsante.reports", "templates"), autoescape=select_autoescape())
_MAIN = [("accuracy", 2), ("brier", 3), ("oe_ratio", 2), ("calibration_slope", 2)]
_DETAIL = [(key, 2) for key in ("calibration_intercept", "scaled_brier", "sensitivity", "specificity", "ppv", "npv")]

def _rows(report: dict, t: dict, k_min: object) -> list[dict]:
    """Table row groups: all hospitals, each hospital, each territory; cells formatted or a suppression notice."""
    perf, labels = report.get("performance") or {}, hospital_labels(report)
    pooled = perf.get("pooled") or {}

    def row(name: str, detail: str, group: dict, plot: bool = True) -> dict:
        m = shown(group)
        reason = (group or {}).get("reason")
        notice = None if m else (t["suppressed"].format(k=k_min) if not reason or "k_min" in reason else reason)
        return {"label": name, "detail": detail, "notice": notice, "plot": plot,
                "main": [] if not m else [
                    f"{fmt(m.get('n'), 0, t['na'])} ({fmt(m.get('n_positive'), 0, t['na'])})",
                    f"{fmt(m.get('auc'), 2, t['na'])} [{fmt(m.get('auc_ci_low'), 2, t['na'])}, "
                    f"{fmt(m.get('auc_ci_high'), 2, t['na'])}]" + pm(group, "auc", t),
                    *[fmt(m.get(key), d, t["na"]) + (pm(group, key, t) if key == "oe_ratio" else "")
                      for key, d in _MAIN]],
                "details": [] if not m else [fmt(m.get(key), d, t["na"]) for key, d in _DETAIL],
                "auc_value": (None, None, None) if not m else (m.get("auc"), m.get("auc_ci_low"), m.get("auc_ci_high")),
                "reliability": m.get("reliability") if m else None}

    pooled_label = pooled.get("label")
    groups = [("pooled", [row(t["pooled"] if pooled_label in (None, "", "all hospitals") else pooled_label,
                              ", ".join(labels.get(s, s) for s in pooled.get("sites") or []), pooled)])]
    groups.append(("hospitals", [row(labels.get(n, n), h.get("territory") or "", h)
                                 for n, h in (perf.get("hospitals") or {}).items()]))
    territories = perf.get("territories") or {}
    if territories:
        groups.append(("territories", [row(name, ", ".join(labels.get(s, s) for s in g.get("sites") or []), g,
                                           plot=len(g.get("sites") or []) > 1)  # one site: the hospital's own row
                                       for name, g in territories.items()]))
    return groups


_FAIR = [("auc", 2), ("accuracy", 2), ("sensitivity", 2), ("specificity", 2), ("ppv", 2), ("oe_ratio", 2)]


def _fairness_tables(report: dict, t: dict, k_min: object, lang: str) -> list[dict]:
    """One table per attribute: a row per group (value, ± noise sd under DP) or its notice, then the gaps.

    Attributes and groups show the study's labels in ``lang``; a group without one shows its name.
    """
    tables = []
    for attribute in (report.get("fairness") or {}).get("attributes") or []:
        rows = []
        for name, group in attribute["groups"].items():
            m = shown(group)
            reason = group.get("reason") or ""
            cells = [] if not m else [
                f"{fmt(m.get('n'), 0, t['na'])} ({fmt(m.get('n_positive'), 0, t['na'])})",
                *[fmt(m.get(key), d, t["na"]) + pm(group, key, t, d) for key, d in _FAIR]]
            rows.append({"name": name, "label": label(group, lang, fallback="") or t["groups"].get(name, name),
                         "cells": cells,
                         "notice": None if m else t["suppressed"].format(k=k_min) if "k_min" in reason else reason})
        gap_cells = [fmt((attribute["gaps"].get(key) or {}).get("gap"), d, t["na"]) for key, d in _FAIR]
        compared = any((g or {}).get("gap") is not None for g in attribute["gaps"].values())
        tables.append({"name": attribute["name"],
                       "label": lower_first(label(attribute, lang, fallback="") or t["attrs"].get(attribute["name"],
                                                                                              attribute["name"])),
                       "rows": rows, "gaps": gap_cells, "flags": attribute.get("flags") or [],
                       "compared": compared,
                       "within_noise": [i for i, (key, _) in enumerate(_FAIR) if key in (attribute.get("within_noise") or [])]})
    return tables


def _participation(report: dict, lang: str) -> dict[str, list[str]]:
    """The plain sentences on hospitals left out of the run, and on those whose figures for a class are withheld."""
    part = report.get("participation") or {}
    return {key: [(item.get("text") or {}).get(lang) or item.get("hospital") or item.get("node") or ""
                  for item in part.get(key) or []] for key in ("left_out", "notes")}


def render_html(report: dict, lang: str = "en") -> str:
    """The whole trust report as one self-contained HTML page in English or French."""
    report = checked(report, lang)
    t = TEXTS[lang]
    run = report.get("run") or {}
    groups = _rows(report, t, run.get("k_min") or 11)
    forest = [(r["label"], *r["auc_value"]) for _, rows in groups for r in rows if r["plot"]]
    curves = {r["label"]: r["reliability"] for name, rows in groups if name != "territories" for r in rows}
    explained = report.get("explanation") or {}
    features = [{**f, "label": label(f, lang)} for f in explained.get("features") or []]
    ranked = [{**f, "label": label(f, lang)} for f in (explained.get("permutation_importance") or {}).get("features")
              or []]
    figures = {"forest": auc_forest_svg(forest, lang=lang), "reliability": reliability_svg(curves, lang=lang),
               "coefficients": coefficients_svg([{**f, "feature": f["label"]} for f in features], lang=lang)}
    study = run.get("study") or {}
    return _env.get_template("trust.html").render(
        r=report, lang=lang, run=run, groups=groups, figures=figures, summary=summary(report, lang),
        fairness=_fairness_tables(report, t, run.get("k_min") or 11, lang), features=features, ranked=ranked,
        outcome=(study.get("outcome") or {}).get(lang), study_title=(study.get("title") or {}).get(lang),
        participation=_participation(report, lang),
        labels=hospital_labels(report), t=t, num=lambda v, d=2: fmt(v, d, t["na"]), direction=direction,
        sci=lambda v: t["na"] if v is None else f"{v:.3g}")


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write the English and French pages, the JSON report and both summaries into ``out_dir``; return their paths."""
    report = checked(report, "en")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {"html": ("trust-report.html", render_html(report, "en")),
                "html_fr": ("trust-report.fr.html", render_html(report, "fr")),
                "json": ("trust-report.json", json.dumps(report, ensure_ascii=False, indent=2, allow_nan=False) + "\n"),
                "summary_fr": ("summary.fr.txt", summary(report, "fr") + "\n"),
                "summary_en": ("summary.en.txt", summary(report, "en") + "\n")}
    paths = {key: out_dir / name for key, (name, _) in contents.items()}
    for key, (_, text) in contents.items():
        paths[key].write_text(text, encoding="utf-8")
    return paths
