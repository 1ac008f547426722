"""What the trust report's page and summary share: fixed words per language, number formatting, labels."""

from __future__ import annotations

import math
import numbers

SCHEMA = "fedsante-trust-report/1"
LANGS = ("en", "fr")

TEXTS = {
    "en": {"na": "n/a", "pooled": "all hospitals", "and": "and", "hospital": "hospital", "hospitals": "hospitals",
           "suppressed": "suppressed (fewer than k_min = {k} patients in a group or class)",
           "raises risk": "raises risk", "lowers risk": "lowers risk", "no effect": "no effect",
           "AUC_explained": "AUC (the probability that the model ranks a patient with the disease above a patient "
                            "without it)",
           "attrs": {"sex": "sex", "age": "age band"}, "groups": {"female": "women", "male": "men"}},
    "fr": {"na": "n.d.", "pooled": "tous les hôpitaux", "and": "et", "hospital": "hôpital", "hospitals": "hôpitaux",
           "suppressed": "masqué (moins de k_min = {k} patients dans un groupe ou une classe)",
           "raises risk": "augmente le risque", "lowers risk": "diminue le risque", "no effect": "sans effet",
           "AUC_explained": "AUC (la probabilité que le modèle classe plus haut un patient malade qu'un patient non "
                            "malade)",
           "attrs": {"sex": "sexe", "age": "tranche d'âge"}, "groups": {"female": "femmes", "male": "hommes"}},
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


def checked(report: dict, lang: str) -> dict:
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}. Got {lang!r} instead.")
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise ValueError(f"Expected a trust report with schema {SCHEMA!r}. Got schema "
                         f"{report.get('schema') if isinstance(report, dict) else type(report).__name__!r} instead.")
    return clean(report)  # type: ignore[return-value]


def fmt(value: object, digits: int = 2, na: str = "n/a", lang: str = "en") -> str:
    """A number rounded to ``digits`` decimals (decimal comma in French prose), or ``na``.

    >>> fmt(0.8234), fmt(None), fmt(151.4, 0), fmt(0.8234, lang="fr")
    ('0.82', 'n/a', '151', '0,82')
    """
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return na
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if lang == "fr" else text


def shown(group: dict | None) -> dict | None:
    """The metrics of a group that may be shown: None when suppressed (no metrics, or a suppression reason)."""
    if not group or not group.get("metrics") or group.get("reason"):
        return None
    return group["metrics"]


def noise_sd(group: dict | None, key: str) -> float | None:
    """Standard deviation of a metric's DP noise (None in an exact run or when unknown)."""
    return ((group or {}).get("noise_sd") or {}).get(key)


def pm(group: dict | None, key: str, t: dict, digits: int = 2) -> str:
    """`` ± sd`` of a metric's DP noise, or nothing in an exact run."""
    sd = noise_sd(group, key)
    return "" if sd is None else f" ± {fmt(sd, digits, t['na'])}"


def hospital_labels(report: dict) -> dict[str, str]:
    """Display label of each hospital, run nodes first."""
    hospitals = (report.get("performance") or {}).get("hospitals") or {}
    nodes = dict.fromkeys([*((report.get("run") or {}).get("nodes") or []), *hospitals])
    return {n: (hospitals.get(n) or {}).get("label") or n for n in nodes}


def direction(feature: dict) -> str:
    coef = feature.get("coef") or 0
    return feature.get("direction") or ("raises risk" if coef > 0 else "lowers risk" if coef < 0 else "no effect")


def join(items: list[str], lang: str) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" {TEXTS[lang]['and']} " + items[-1]




def label(item: dict, lang: str, fallback: str = "feature") -> str:
    """The study's label of a feature, attribute or group in ``lang`` (``labels``), else its raw name.

    >>> label({"feature": "cp=4", "labels": {"fr": "Type de douleur thoracique : 4"}}, "fr")
    'Type de douleur thoracique : 4'
    >>> label({"feature": "cp=4"}, "en")
    'cp=4'
    """
    return str(((item or {}).get("labels") or {}).get(lang) or (item or {}).get(fallback) or "")


def lower_first(text: str) -> str:
    """A label inside a sentence: first letter in lower case unless the word is an acronym.

    >>> lower_first("Sexe"), lower_first("IMC"), lower_first("Âge")
    ('sexe', 'IMC', 'âge')
    """
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]
