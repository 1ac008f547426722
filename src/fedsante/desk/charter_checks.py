"""The charter's automatic checks on a project's study: declared, justified, supported, flagged, fair.

Each function has the signature of :data:`fedsante.desk.charter.CheckFn` and returns (English,
French) pairs; an empty list passes. A check the charter declares with ``severity = "flag"`` turns
what its function returns into a flag shown to reviewers, which does not block submission.

>>> from fedsante.desk.registry import ProjectSpec
>>> study_defined(ProjectSpec(), {}, None, None)[0][0][:52]
'study is missing: declare the study of the project, '
>>> sensitive_variables(ProjectSpec(study="heart"), {}, None, None)[0][0]
'variables marked sensitive: sex'
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from fedsante.algorithms.catalogue import catalogue
from fedsante.common.errors import FedsanteError
from fedsante.desk.registry import ProjectSpec, algorithm_params

if TYPE_CHECKING:
    from fedsante.desk.charter import Charter

Problem = tuple[str, str]
"""One reason a check fails, or one finding a flag shows: (English, French)."""


def study_defined(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    if spec.study is not None:
        return []
    return [("study is missing: declare the study of the project, either a bundled one (study = \"heart\") or a "
             "[study] table with its outcome, predictors, fairness attributes, filters and split (docs/data.md)",
             "study n'est pas renseignée : déclarez l'étude du projet, soit une étude fournie (study = \"heart\"), "
             "soit une table [study] avec son critère de jugement, ses variables explicatives, ses attributs "
             "d'équité, ses filtres et son partage (docs/data.md)")]


def justifications(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    if spec.study is None:
        return []
    names = ", ".join(v.name for v in spec.study.predictors if not v.justification.strip())
    if not names:
        return []
    return [(f"study.predictors without a justification: {names}; say why each variable is needed for the "
             "objectives, or remove it (data minimisation)",
             f"study.predictors sans justification : {names} ; dites pourquoi chaque variable est nécessaire aux "
             "objectifs, ou retirez-la (minimisation des données)")]


def outcome_type(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    entries = catalogue()
    if spec.study is None or spec.algorithm not in entries:  # study_defined and algorithm say so
        return []
    kind, supported = spec.study.outcome.type, entries[spec.algorithm].outcome_types
    if kind in supported:
        return []
    others = sorted(a for a, entry in entries.items() if kind in entry.outcome_types)
    hint_en = f"choose one of: {', '.join(others)}" if others else "no algorithm of the catalogue supports it yet"
    hint_fr = (f"choisissez parmi : {', '.join(others)}" if others
               else "aucun algorithme du catalogue ne le prend encore en charge")
    return [(f"study.outcome.type is {kind!r} but algorithm {spec.algorithm!r} supports only "
             f"{', '.join(sorted(supported))} outcomes; {hint_en}",
             f"study.outcome.type vaut {kind!r} mais l'algorithme {spec.algorithm!r} ne prend en charge que les "
             f"critères de type {', '.join(sorted(supported))} ; {hint_fr}")]


def sensitive_variables(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    """A flag, not a failure: the sensitive predictors and the fairness attributes, for reviewers."""
    if spec.study is None:
        return []
    findings = []
    sensitive = ", ".join(spec.study.sensitive_variables())
    if sensitive:
        findings.append((f"variables marked sensitive: {sensitive}", f"variables marquées sensibles : {sensitive}"))
    attributes = ", ".join(f"{a.name} ({', '.join(g.name for g in a.groups)})" for a in spec.study.fairness)
    if attributes:
        findings.append((f"fairness attributes: {attributes}", f"attributs d'équité : {attributes}"))
    return findings


def fairness_attributes(spec: ProjectSpec, params: dict, charter: Charter, today: date) -> list[Problem]:
    if spec.study is None or "fairness" not in spec.reports_requested:
        return []
    declared = [a.name for a in spec.study.fairness]
    if not declared:
        return [("reports_requested includes 'fairness' but study.fairness declares no attribute: add a "
                 "[[study.fairness]] table naming a variable and its groups (docs/data.md)",
                 "reports_requested contient « fairness » mais study.fairness ne déclare aucun attribut : ajoutez "
                 "une table [[study.fairness]] qui nomme une variable et ses groupes (docs/data.md)")]
    try:
        names: list[Any] = getattr(algorithm_params(spec), "attribute_names", [])
    except FedsanteError:  # catalogued_algorithm names the problem
        return []
    unknown = ", ".join(n for n in names if n != "*" and n not in declared)
    if unknown:
        return [(f"parameters.fairness_attributes names {unknown}, not declared in study.fairness "
                 f"(declared: {', '.join(declared)})",
                 f"parameters.fairness_attributes cite {unknown}, absent de study.fairness "
                 f"(attributs déclarés : {', '.join(declared)})")]
    return []
