"""Cross-field checks of a study schema: each returns 'field.path: problem' lines, empty when valid."""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedsante.data.study import FairnessAttribute, Filter, Split, StudySchema, Variable


def split_problems(split: Split) -> list[str]:
    """Problems of a split rule taken alone."""
    if split.method == "seeded":
        problems = []
        if split.column or split.train or split.test:
            problems.append("a 'seeded' split takes 'test_fraction' and 'seed', not 'column', 'train' or 'test'")
        if not 0.0 < split.test_fraction < 1.0:
            problems.append(f"'test_fraction' must be in (0, 1), got {split.test_fraction}")
        return problems
    problems = []
    if not split.column:
        problems.append("a 'column' split needs 'column', the study name of the split column, e.g. \"split\"")
    if not split.train or not split.test:
        problems.append("a 'column' split needs non-empty 'train' and 'test' lists of values")
    both = sorted(set(split.train) & set(split.test))
    if both:
        problems.append(f"values {both} are in both 'train' and 'test'; list each value once")
    return problems


def study_problems(study: StudySchema) -> list[str]:
    """Every cross-field problem of a study (names, fairness groups, filters, split column)."""
    problems = _name_problems(study)
    predictors = {v.name: v for v in study.predictors}
    names = Counter(a.name for a in study.fairness)
    for i, attribute in enumerate(study.fairness):
        where = f"fairness.{i}"
        if names[attribute.name] > 1:
            problems.append(f"{where}.name: fairness attribute name {attribute.name!r} is used twice")
        variable = predictors.get(attribute.variable)
        if variable is None:
            problems.append(f"{where}.variable: {attribute.variable!r} is not a declared predictor "
                            f"(predictors: {', '.join(predictors)}); declare it or fix the name")
            continue
        problems += _group_problems(where, attribute, variable)
    outcome_names = set(study.outcome.variables())
    for i, rule in enumerate(study.filters):
        variable = predictors.get(rule.variable)
        if variable is None and rule.variable not in outcome_names:
            problems.append(f"filters.{i}.variable: {rule.variable!r} is not a declared predictor or outcome "
                            "variable; filters apply to study variables only")
            continue
        numeric = variable.type == "numeric" if variable else study.outcome.type != "binary"
        problems += _filter_problems(f"filters.{i}", rule, variable, numeric=numeric)
    return problems


def _name_problems(study: StudySchema) -> list[str]:
    problems = []
    outcome = study.outcome.variables()
    if len(set(outcome)) != len(outcome):
        problems.append("outcome: 'time_variable' and 'event_variable' must differ")
    counts = Counter(v.name for v in study.predictors)
    for i, variable in enumerate(study.predictors):
        if counts[variable.name] > 1:
            problems.append(f"predictors.{i}.name: {variable.name!r} is declared more than once")
        if variable.name in outcome or variable.name == study.outcome.variable:
            problems.append(f"predictors.{i}.name: {variable.name!r} is the outcome; a predictor cannot be it")
    if study.split.method == "column" and study.split.column in (*outcome, *counts):
        problems.append(f"split.column: {study.split.column!r} is already a study variable; "
                        "name the split column differently")
    return problems


def _group_problems(where: str, attribute: FairnessAttribute, variable: Variable) -> list[str]:
    problems = []
    if len({g.name for g in attribute.groups}) != len(attribute.groups):
        problems.append(f"{where}.groups: group names must be unique")
    if variable.type == "numeric":
        bands = []
        for j, group in enumerate(attribute.groups):
            if group.levels:
                problems.append(f"{where}.groups.{j}: {variable.name!r} is numeric; give 'low' and 'high', "
                                "not 'levels'")
            else:
                bands.append((group.low, group.high, group.name))
        bands.sort()
        for (_, high, first), (low, _, second) in zip(bands, bands[1:]):
            if low < high:
                problems.append(f"{where}.groups: groups {first!r} and {second!r} overlap ({low:g} < {high:g}); "
                                "bands are low <= x < high and must not overlap")
        return problems
    seen: dict[str, str] = {}
    for j, group in enumerate(attribute.groups):
        if not group.levels:
            problems.append(f"{where}.groups.{j}: {variable.name!r} is {variable.type}; give 'levels', "
                            "not 'low' and 'high'")
        for level in group.levels:
            if level not in variable.levels:
                problems.append(f"{where}.groups.{j}.levels: {level!r} is not a level of {variable.name!r} "
                                f"({', '.join(variable.levels)})")
            elif level in seen:
                problems.append(f"{where}.groups: level {level!r} is in groups {seen[level]!r} and "
                                f"{group.name!r}; groups must not overlap")
            seen.setdefault(level, group.name)
    return problems


def _filter_problems(where: str, rule: Filter, variable: Variable | None, *, numeric: bool) -> list[str]:
    values = rule.value if isinstance(rule.value, list) else [rule.value]
    if numeric:
        bad = [v for v in values if not isinstance(v, float | int) or not math.isfinite(v)]
        if bad:
            return [f"{where}.value: {rule.variable!r} is numeric; compare it with finite numbers, got {bad}"]
        return []
    if rule.op not in ("==", "!=", "in", "not in"):
        return [f"{where}.op: {rule.op!r} needs a numeric variable; {rule.variable!r} takes "
                "'==', '!=', 'in' or 'not in'"]
    if variable is None:
        return []
    from fedsante.data.study import canonical

    unknown = [v for v in values if canonical(v) not in variable.levels]
    if unknown:
        return [f"{where}.value: {unknown} not levels of {rule.variable!r} ({', '.join(variable.levels)})"]
    return []
