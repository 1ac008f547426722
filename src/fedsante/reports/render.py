"""The trust report (:mod:`fedsante.reports.trust`) as a self-contained HTML page and a plain-language summary.

The page has no external asset and no script: the figures are inline SVG (:mod:`fedsante.reports.plots`),
the style is inline. English and French share one template; only the headings and fixed texts are
translated, data values (labels, model card, limitations) stay as given. A group whose metrics are None
shows a suppression notice and nothing else. Rendering is deterministic (no clock, fixed SVG salt).
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from fedsante.reports.plots import auc_forest_svg, coefficients_svg, reliability_svg

__all__ = ["LANGS", "SCHEMA", "clean", "render_html", "summary", "write_report"]

SCHEMA = "fedsante-trust-report/1"
LANGS = ("en", "fr")
_env = Environment(loader=PackageLoader("fedsante.reports", "templates"), autoescape=select_autoescape())
_MAIN = [("accuracy", 2), ("brier", 3), ("oe_ratio", 2), ("calibration_slope", 2)]
_DETAIL = [(key, 2) for key in ("calibration_intercept", "scaled_brier", "sensitivity", "specificity", "ppv", "npv")]

_T = {
    "en": {"na": "n/a", "pooled": "all hospitals", "and": "and", "hospital": "hospital", "hospitals": "hospitals",
           "suppressed": "suppressed (fewer than k_min = {k} patients in a group or class)",
           "raises risk": "raises risk", "lowers risk": "lowers risk", "no effect": "no effect",
           "AUC_explained": "AUC (the probability that the model ranks a patient with the disease above a patient "
                            "without it)"},
    "fr": {"na": "n.d.", "pooled": "tous les hôpitaux", "and": "et", "hospital": "hôpital", "hospitals": "hôpitaux",
           "suppressed": "masqué (moins de k_min = {k} patients dans un groupe ou une classe)",
           "raises risk": "augmente le risque", "lowers risk": "diminue le risque", "no effect": "sans effet",
           "AUC_explained": "AUC (la probabilité que le modèle classe plus haut un patient malade qu'un patient non "
                            "malade)"},
}
_S = {  # the plain-language summary, sentence by sentence
    "en": {
        "purpose": "This model was trained across {k} {hospitals} ({names}) for one purpose: “{title}”.",
        "purpose_untitled": "This model was trained across {k} {hospitals} ({names}).",
        "overall": "On {n} test patients from all hospitals, its {AUC} was {auc}, between {low} and {high} allowing "
                   "for uncertainty{noise}; 0.5 would be chance and 1 a perfect ranking.",
        "overall_noise": ", give or take {sd} more for the privacy noise",
        "noisy_sites": "Differences between hospitals (AUC from {low} to {high}) cannot be told apart from the privacy "
                       "noise.",
        "cal_noisy": "How closely its predicted risks match what was observed cannot be told through the privacy "
                     "noise.",
        "overall_hidden": "Its overall results are not published because too few patients were tested (fewer than "
                          "{k_min} in a group or class).",
        "overall_na": "Its overall AUC could not be computed.",
        "weakest": "It did less well for the patients of {label} (AUC {auc}, {gap} below all hospitals together).",
        "similar": "Its {AUC} was similar from one hospital to another, from {low} to {high}.",
        "single": "The only hospital with its own published result is {label}, where its {AUC} was {auc}.",
        "hidden": "the results of {names} are not shown because too few patients were tested there",
        "all_hidden": "No hospital's own results are published because too few patients were tested at each.",
        "cal_good": "On average, its predicted risks matched what was observed: for every 100 cases of the disease it "
                    "predicted, {per100} were observed",
        "cal_under": "On average, it underestimated risk: for every 100 cases of the disease it predicted, {per100} "
                     "were observed",
        "cal_over": "On average, it overestimated risk: for every 100 cases of the disease it predicted, only {per100} "
                    "were observed",
        "cal_none": "How closely its predicted risks match what was observed could not be measured.",
        "extreme": "; its predictions were too extreme, high risks too high and low risks too low",
        "timid": "; its predictions were too cautious, too close to the average",
        "dp": "Patient data never left the hospitals: only model parameters and group statistics were shared, with "
              "random noise added to protect each patient, for a privacy budget of ε = {eps}{approved} (the smaller "
              "ε, the stronger the protection).",
        "approved": ", within the approved {approved}",
        "exact": "Patient data never left the hospitals: only model parameters and group statistics were shared; no "
                 "random noise was added for privacy in this run, so no privacy budget ε applies.",
        "factors": "The factors that weigh most in its predictions are {factors}.",
        "fair_flag": "Its results differed between groups of patients ({attrs}) by more than the charter allows; the "
                     "report details these gaps.",
        "fair_ok": "Its results were similar across the groups of patients that could be compared ({attrs}), within "
                   "the charter's tolerance{noise}.",
        "fair_noise": " and the precision that the privacy noise allows",
        "fair_noisy": "Differences between groups of patients ({attrs}) cannot be told apart from the privacy noise.",
        "fair_none": "Too few patients were tested to compare groups of patients ({attrs}).",
        "attrs": {"sex": "by sex", "age": "by age band"},
        "limits": "The full report lists the limits of these results.",
    },
    "fr": {
        "purpose": "Ce modèle a été entraîné dans {k} {hospitals} ({names}) dans un but précis : « {title} ».",
        "purpose_untitled": "Ce modèle a été entraîné dans {k} {hospitals} ({names}).",
        "overall": "Sur {n} patients de test de l'ensemble des hôpitaux, son {AUC} est de {auc}, entre {low} et {high} "
                   "compte tenu de l'incertitude{noise} ; 0,5 correspondrait au hasard et 1 à un classement parfait.",
        "overall_noise": ", à {sd} près en plus du fait du bruit de confidentialité",
        "noisy_sites": "Les écarts entre hôpitaux (AUC de {low} à {high}) ne se distinguent pas du bruit de "
                       "confidentialité.",
        "cal_noisy": "L'accord entre les risques annoncés et ce qui a été observé ne se distingue pas du bruit de "
                     "confidentialité.",
        "overall_hidden": "Ses résultats d'ensemble ne sont pas publiés car trop peu de patients ont été testés (moins "
                          "de {k_min} dans un groupe ou une classe).",
        "overall_na": "Son AUC d'ensemble n'a pas pu être calculée.",
        "weakest": "Il a été moins performant pour les patients de {label} (AUC de {auc}, soit {gap} de moins que "
                   "l'ensemble des hôpitaux).",
        "similar": "Son {AUC} est comparable d'un hôpital à l'autre, de {low} à {high}.",
        "single": "Le seul hôpital dont le résultat propre est publié est {label}, où son {AUC} est de {auc}.",
        "hidden": "les résultats de {names} ne sont pas montrés car trop peu de patients y ont été testés",
        "all_hidden": "Aucun résultat propre à un hôpital n'est publié, faute d'assez de patients testés dans chacun.",
        "cal_good": "En moyenne, les risques annoncés correspondent à ce qui a été observé : pour 100 cas de maladie "
                    "prévus, {per100} ont été observés",
        "cal_under": "En moyenne, le modèle sous-estime le risque : pour 100 cas de maladie prévus, {per100} ont été "
                     "observés",
        "cal_over": "En moyenne, le modèle surestime le risque : pour 100 cas de maladie prévus, seulement "
                    "{per100} ont été observés",
        "cal_none": "L'accord entre les risques annoncés et ce qui a été observé n'a pas pu être mesuré.",
        "extreme": " ; ses prédictions sont trop tranchées, les risques élevés trop hauts et les faibles trop bas",
        "timid": " ; ses prédictions sont trop prudentes, trop proches de la moyenne",
        "dp": "Les données des patients n'ont jamais quitté les hôpitaux : seuls les paramètres du modèle et des "
              "statistiques de groupe ont été partagés, avec un bruit aléatoire ajouté pour protéger chaque patient, "
              "pour un budget de confidentialité ε = {eps}{approved} (plus ε est petit, plus la protection est forte).",
        "approved": ", dans la limite autorisée de {approved}",
        "exact": "Les données des patients n'ont jamais quitté les hôpitaux : seuls les paramètres du modèle et des "
                 "statistiques de groupe ont été partagés ; aucun bruit aléatoire n'a été ajouté dans cette analyse, "
                 "donc aucun budget de confidentialité ε ne s'applique.",
        "factors": "Les facteurs qui pèsent le plus dans ses prédictions sont : {factors}.",
        "fair_flag": "Ses résultats diffèrent entre groupes de patients ({attrs}) plus que la charte ne le permet ; "
                     "le rapport détaille ces écarts.",
        "fair_ok": "Ses résultats sont comparables entre les groupes de patients qui ont pu être comparés ({attrs}), "
                   "dans la tolérance de la charte{noise}.",
        "fair_noise": " et dans la précision que permet le bruit de confidentialité",
        "fair_noisy": "Les écarts entre groupes de patients ({attrs}) ne se distinguent pas du bruit de confidentialité.",
        "fair_none": "Trop peu de patients ont été testés pour comparer des groupes de patients ({attrs}).",
        "attrs": {"sex": "par sexe", "age": "par tranche d'âge"},
        "limits": "Le rapport complet détaille les limites de ces résultats.",
    },
}


def clean(value: object) -> object:
    """A JSON-ready copy: NaN and infinities become None, numpy scalars and arrays plain Python values.

    >>> clean({"a": float("nan"), "b": [1.5, float("inf")], "c": (True, None)})
    {'a': None, 'b': [1.5, None], 'c': [True, None]}
    """
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return clean(value.tolist())
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return (float(value) if math.isfinite(value) else None) if isinstance(value, numbers.Real) else value


def _checked(report: dict, lang: str) -> dict:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}. Got {lang!r} instead.")
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ValueError(f"Expected a trust report with schema {SCHEMA!r}. Got schema "
                         f"{report.get('schema') if isinstance(report, dict) else type(report).__name__!r} instead.")
    return clean(report)  # type: ignore[return-value]


def _fmt(value: object, digits: int = 2, na: str = "n/a", lang: str = "en") -> str:
    """A number rounded to ``digits`` decimals (decimal comma in French prose), or ``na``.

    >>> _fmt(0.8234), _fmt(None), _fmt(151.4, 0), _fmt(0.8234, lang="fr")
    ('0.82', 'n/a', '151', '0,82')
    """
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return na
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if lang == "fr" else text


def _shown(group: dict | None) -> dict | None:
    """The metrics of a group that may be shown: None when suppressed (no metrics, or a suppression reason)."""
    if not group or not group.get("metrics") or group.get("reason"):
        return None
    return group["metrics"]


def _sd(group: dict | None, key: str) -> float | None:
    """Standard deviation of a metric's DP noise (None in an exact run or when unknown)."""
    return ((group or {}).get("noise_sd") or {}).get(key)


def _pm(group: dict | None, key: str, t: dict, digits: int = 2) -> str:
    """`` ± sd`` of a metric's DP noise, or nothing in an exact run."""
    sd = _sd(group, key)
    return "" if sd is None else f" ± {_fmt(sd, digits, t['na'])}"


def _labels(report: dict) -> dict[str, str]:
    """Display label of each hospital, run nodes first."""
    hospitals = (report.get("performance") or {}).get("hospitals") or {}
    nodes = dict.fromkeys([*((report.get("run") or {}).get("nodes") or []), *hospitals])
    return {n: (hospitals.get(n) or {}).get("label") or n for n in nodes}


def _direction(feature: dict) -> str:
    coef = feature.get("coef") or 0
    return feature.get("direction") or ("raises risk" if coef > 0 else "lowers risk" if coef < 0 else "no effect")


def _join(items: list[str], lang: str) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {_T[lang]['and']} " + items[-1]


def summary(report: dict, lang: str = "fr") -> str:
    """Four to seven plain sentences for a patient: purpose, overall AUC, hospitals, calibration, privacy, factors."""
    report = _checked(report, lang)
    s, t, labels = _S[lang], _T[lang], _labels(report)
    num = lambda v, d=2: _fmt(v, d, t["na"], lang)  # noqa: E731
    run, perf = report.get("run") or {}, report.get("performance") or {}
    k = len(labels)
    names = _join(list(labels.values()), lang) if labels else t["na"]
    title = (run.get("title") or "").strip().rstrip(".")
    out = [s["purpose" if title else "purpose_untitled"].format(
        k=k, hospitals=t["hospital" if k == 1 else "hospitals"], names=names, title=title)]
    explained = False

    def auc_word() -> str:
        nonlocal explained
        word, explained = ("AUC" if explained else t["AUC_explained"]), True
        return word

    pooled = _shown(perf.get("pooled"))
    if pooled and pooled.get("auc") is not None:
        sd = _sd(perf.get("pooled"), "auc")
        out.append(s["overall"].format(n=num(pooled.get("n"), 0), AUC=auc_word(), auc=num(pooled["auc"]),
                                       low=num(pooled.get("auc_ci_low")), high=num(pooled.get("auc_ci_high")),
                                       noise="" if sd is None else s["overall_noise"].format(sd=num(sd))))
    else:
        out.append(s["overall_na" if pooled else "overall_hidden"].format(k_min=run.get("k_min") or 11))
    hospitals = perf.get("hospitals") or {}
    aucs = [(labels.get(n, n), m["auc"], _sd(h, "auc")) for n, h in hospitals.items()
            if (m := _shown(h)) and m.get("auc") is not None]
    hidden = [labels.get(n, n) for n, h in hospitals.items() if _shown(h) is None]
    sentence = None
    if aucs:
        worst = min(aucs, key=lambda row: row[1])
        lowest, highest = worst[1], max(row[1] for row in aucs)
        noisy = worst[2] is not None
        clear = not noisy or (pooled and pooled.get("auc") is not None
                              and pooled["auc"] - lowest > 1.96 * math.hypot(worst[2], _sd(perf.get("pooled"), "auc") or 0))
        if noisy and not clear and len(aucs) > 1:
            sentence = s["noisy_sites"].format(low=num(lowest), high=num(highest))
        elif pooled and pooled.get("auc") is not None and round(pooled["auc"] - lowest, 9) >= 0.05 and len(aucs) > 1:
            sentence = s["weakest"].format(label=worst[0], auc=num(lowest), gap=num(pooled["auc"] - lowest))
        elif len(aucs) > 1:
            sentence = s["similar"].format(AUC=auc_word(), low=num(lowest), high=num(highest))
        else:
            sentence = s["single"].format(label=worst[0], AUC=auc_word(), auc=num(lowest))
    if sentence and hidden:
        glue = "; " if lang == "en" else "\u00a0; "
        sentence = sentence[:-1] + glue + s["hidden"].format(names=_join(hidden, lang)) + "."
    elif hidden:
        sentence = s["all_hidden"]
    if sentence:
        out.append(sentence)
    oe = pooled.get("oe_ratio") if pooled else None
    oe_sd = _sd(perf.get("pooled"), "oe_ratio")
    if oe is None:
        out.append(s["cal_none"])
    elif oe_sd is not None and abs(oe - 1) <= 1.96 * oe_sd:
        out.append(s["cal_noisy"])
    else:
        kind = "cal_good" if 0.9 <= oe <= 1.1 else "cal_under" if oe > 1.1 else "cal_over"
        slope = pooled.get("calibration_slope")
        tail = "" if slope is None else s["extreme"] if slope < 0.8 else s["timid"] if slope > 1.25 else ""
        out.append(s[kind].format(per100=num(100 * oe, 0)) + tail + ".")
    privacy = report.get("privacy") or {}
    if privacy.get("epsilon") is not None:
        approved = privacy.get("approved_epsilon")
        out.append(s["dp"].format(eps=num(privacy["epsilon"]),
                                  approved="" if approved is None else s["approved"].format(approved=num(approved))))
    else:
        out.append(s["exact"])
    features = [f for f in (report.get("explanation") or {}).get("features") or [] if f.get("coef") is not None][:3]
    if features:
        out.append(s["factors"].format(factors=_join([f"{f['feature']} ({t.get(d := _direction(f), d)})"
                                                      for f in features], lang)))
    fairness = _fairness_sentence(report.get("fairness"), s, lang)
    if fairness:
        out.append(fairness)
    if report.get("limitations"):
        out.append(s["limits"])
    return " ".join(out)


def _fairness_sentence(fairness: dict | None, s: dict, lang: str) -> str | None:
    """Whether groups of patients fared alike: flagged gaps, none, or no group comparable."""
    attributes = (fairness or {}).get("attributes") or []
    if not attributes:
        return None
    words = lambda names: _join([s["attrs"].get(n, n) for n in names], lang)  # noqa: E731
    flagged = [a["name"] for a in attributes if a.get("flags")]
    compared = [a["name"] for a in attributes if any((g or {}).get("gap") is not None for g in a["gaps"].values())]
    if flagged:
        return s["fair_flag"].format(attrs=words(flagged))
    noisy = [a["name"] for a in attributes if a.get("within_noise")]
    if noisy:
        return s["fair_noisy"].format(attrs=words(noisy))
    if compared:
        return s["fair_ok"].format(attrs=words(compared), noise=s["fair_noise"] if fairness.get("noise_sd") else "")
    return s["fair_none"].format(attrs=words([a["name"] for a in attributes]))


def _rows(report: dict, t: dict, k_min: object) -> list[dict]:
    """Table row groups: all hospitals, each hospital, each territory; cells formatted or a suppression notice."""
    perf, labels = report.get("performance") or {}, _labels(report)
    pooled = perf.get("pooled") or {}

    def row(label: str, detail: str, group: dict, plot: bool = True) -> dict:
        m = _shown(group)
        reason = (group or {}).get("reason")
        notice = None if m else (t["suppressed"].format(k=k_min) if not reason or "k_min" in reason else reason)
        return {"label": label, "detail": detail, "notice": notice, "plot": plot,
                "main": [] if not m else [
                    f"{_fmt(m.get('n'), 0, t['na'])} ({_fmt(m.get('n_positive'), 0, t['na'])})",
                    f"{_fmt(m.get('auc'), 2, t['na'])} [{_fmt(m.get('auc_ci_low'), 2, t['na'])}, "
                    f"{_fmt(m.get('auc_ci_high'), 2, t['na'])}]" + _pm(group, "auc", t),
                    *[_fmt(m.get(key), d, t["na"]) + (_pm(group, key, t) if key == "oe_ratio" else "")
                      for key, d in _MAIN]],
                "details": [] if not m else [_fmt(m.get(key), d, t["na"]) for key, d in _DETAIL],
                "auc_value": (None, None, None) if not m else (m.get("auc"), m.get("auc_ci_low"), m.get("auc_ci_high")),
                "reliability": m.get("reliability") if m else None}

    label = pooled.get("label")
    groups = [("pooled", [row(t["pooled"] if label in (None, "", "all hospitals") else label,
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


def _fairness_tables(report: dict, t: dict, k_min: object) -> list[dict]:
    """One table per attribute: a row per group (value, ± noise sd under DP) or its notice, then the gaps."""
    labels, tables = _labels(report), []
    for attribute in (report.get("fairness") or {}).get("attributes") or []:
        rows = []
        for label, group in attribute["groups"].items():
            m = _shown(group)
            reason = group.get("reason") or ""
            cells = [] if not m else [
                f"{_fmt(m.get('n'), 0, t['na'])} ({_fmt(m.get('n_positive'), 0, t['na'])})",
                *[_fmt(m.get(key), d, t["na"]) + _pm(group, key, t, d) for key, d in _FAIR]]
            rows.append({"label": label, "cells": cells,
                         "notice": None if m else t["suppressed"].format(k=k_min) if "k_min" in reason else reason})
        gap_cells = [_fmt((attribute["gaps"].get(key) or {}).get("gap"), d, t["na"]) for key, d in _FAIR]
        compared = any((g or {}).get("gap") is not None for g in attribute["gaps"].values())
        tables.append({"name": attribute["name"], "rows": rows, "gaps": gap_cells, "flags": attribute.get("flags") or [],
                       "compared": compared,
                       "within_noise": [i for i, (key, _) in enumerate(_FAIR) if key in (attribute.get("within_noise") or [])]})
    return tables


def render_html(report: dict, lang: str = "en") -> str:
    """The whole trust report as one self-contained HTML page in English or French."""
    report = _checked(report, lang)
    t = _T[lang]
    run = report.get("run") or {}
    groups = _rows(report, t, run.get("k_min") or 11)
    forest = [(r["label"], *r["auc_value"]) for _, rows in groups for r in rows if r["plot"]]
    curves = {r["label"]: r["reliability"] for name, rows in groups if name != "territories" for r in rows}
    features = (report.get("explanation") or {}).get("features") or []
    figures = {"forest": auc_forest_svg(forest, lang=lang), "reliability": reliability_svg(curves, lang=lang),
               "coefficients": coefficients_svg(features, lang=lang)}
    return _env.get_template("trust.html").render(
        r=report, lang=lang, run=run, groups=groups, figures=figures, summary=summary(report, lang),
        fairness=_fairness_tables(report, t, run.get("k_min") or 11),
        labels=_labels(report), t=t, num=lambda v, d=2: _fmt(v, d, t["na"]), direction=_direction,
        sci=lambda v: t["na"] if v is None else f"{v:.3g}")


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write the English and French pages, the JSON report and both summaries into ``out_dir``; return their paths."""
    report = _checked(report, "en")
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
