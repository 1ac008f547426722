"""Cohort compilation: a raw table, a study and a mapping give the encoded rows a study sees.

Order of work: map values, parse them, drop rows with a missing value of a ``missing = "drop"``
variable (or of the outcome), apply the filters, assign the split, encode. Every excluded row is
counted by reason in :attr:`Cohort.excluded`. Features are encoded per
:meth:`StudySchema.feature_names` and are neither clipped nor scaled.
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from fedsante.data.mapping import Mapping, map_values, mapping_problems
from fedsante.data.sources import RawTable
from fedsante.data.study import Filter, StudySchema, Variable, canonical
from fedsante.common.errors import DataError

REASONS = ("unmapped value", "missing value", "filter", "not in a split")
_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


@dataclass(frozen=True)
class Feasibility:
    """True counts of a cohort (LOCAL only: the node decides k_min on them, they are not published)."""

    rows: int
    by_split: dict[str, int]
    by_class: dict[str, dict[str, int]]
    """Per split, rows per outcome class (``"0"``/``"1"``); empty for a non-binary outcome."""


@dataclass(frozen=True)
class Cohort:
    """The rows of one dataset as a study sees them (encoded, not clipped nor scaled)."""

    dataset: str
    source: str
    patient_id: np.ndarray
    X: np.ndarray
    y: np.ndarray
    split: np.ndarray
    groups: dict[str, np.ndarray]
    feature_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    excluded: dict[str, int]
    binary: bool = True
    attribute_groups: tuple[tuple[str, int], ...] = ()
    """The study's fairness attributes in order, with their number of groups (``groups`` holds indices)."""
    event: np.ndarray | None = field(default=None)
    """Time-to-event outcomes only: 1.0 when the event happened (``y`` is then the time)."""

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` public bounds per feature, from the study."""
        return self.lower, self.upper

    def part(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(X, y)`` of the ``'train'`` or ``'test'`` rows."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'. Got {split!r} instead.")
        mask = self.split == split
        return self.X[mask], self.y[mask]

    def without(self, patient_ids: set[str]) -> Cohort:
        """The cohort minus the given patients (objections); ``excluded`` is unchanged."""
        keep = np.array([pid not in patient_ids for pid in self.patient_id], dtype=bool)
        return replace(
            self, patient_id=self.patient_id[keep], X=self.X[keep], y=self.y[keep], split=self.split[keep],
            groups={k: v[keep] for k, v in self.groups.items()},
            event=None if self.event is None else self.event[keep])

    def feasibility(self) -> Feasibility:
        """The true counts: rows, rows per split and, for a binary outcome, per class per split."""
        by_split = {s: int((self.split == s).sum()) for s in ("train", "test")}
        by_class = {}
        if self.binary:
            by_class = {s: {c: int(((self.split == s) & (self.y == float(c))).sum()) for c in ("0", "1")}
                        for s in ("train", "test")}
        return Feasibility(rows=len(self.y), by_split=by_split, by_class=by_class)


def compile_cohort(raw: RawTable, study: StudySchema, mapping: Mapping, *, dataset: str,
                   on_unmapped: Literal["error", "exclude"] = "error") -> Cohort:
    """Compile a dataset's rows for a study.

    Raises DataError when a mapped column is absent, when values remain that the study cannot read
    (unless ``on_unmapped="exclude"``, which drops and counts those rows), or when no row is left.
    """
    mapping = mapping.for_study(study)
    problems = mapping_problems(raw, study, mapping)
    if problems and (on_unmapped == "error" or any(p.value is None for p in problems)):
        raise DataError(
            f"{raw.source}: {len(problems)} mapping problem{'s' if len(problems) > 1 else ''} for study "
            f"{study.id!r}: " + "; ".join(p.message for p in problems[:5])
            + ("; ..." if len(problems) > 5 else "") + ". Fix the mapping or the values "
            "(`node check` lists them all).",
            errors=[f"{p.file}, column {p.column!r}, value {p.value!r} ({p.count} rows): {p.message}"
                    for p in problems])
    values = {e.variable: np.array(map_values(raw.columns[e.column], e), dtype=object) for e in mapping.variables}
    keep = np.ones(raw.n_rows, dtype=bool)
    excluded = dict.fromkeys(REASONS, 0)
    for reason, rows in _exclusions(study, values, problems, raw.patient_id):
        excluded[reason] = int((keep & ~rows).sum())
        keep &= rows
    if not keep.any():
        raise DataError(
            f"{raw.source}: no row is left for study {study.id!r} (excluded: "
            + ", ".join(f"{n} {r}" for r, n in excluded.items() if n) + "). Check the mapping, the "
            "missing-value markers, the filters and the split column.")
    kept = {name: column[keep] for name, column in values.items()}
    lower, upper = study.feature_bounds()
    y, event = _outcome(study, kept)
    return Cohort(
        dataset=dataset, source=raw.source, patient_id=np.asarray(raw.patient_id[keep], dtype=object),
        X=encode(study, kept), y=y, split=_split(study, kept, raw.patient_id[keep]),
        groups=_groups(study, kept), feature_names=study.feature_names(), lower=lower, upper=upper,
        excluded=excluded, binary=study.outcome.type == "binary", event=event,
        attribute_groups=tuple((a.name, len(a.groups)) for a in study.fairness))


def _exclusions(study: StudySchema, values: dict[str, np.ndarray], problems, patient_id: np.ndarray):
    """Yield ``(reason, rows kept)`` in the order of work."""
    n = len(patient_id)
    bad = np.zeros(n, dtype=bool)
    for p in problems:
        bad |= np.array([v == p.value for v in values[p.variable]], dtype=bool)
    yield "unmapped value", ~bad
    required = [*study.outcome.variables(), *(v.name for v in study.predictors if v.missing == "drop")]
    present = np.ones(n, dtype=bool)
    for name in required:
        present &= np.array([v is not None for v in values[name]], dtype=bool)
    yield "missing value", present
    passes = np.ones(n, dtype=bool)
    for rule in study.filters:
        passes &= _apply_filter(study, rule, values[rule.variable])
    yield "filter", passes
    if study.split.method == "column":
        allowed = {*study.split.train, *study.split.test}
        yield "not in a split", np.array([v in allowed for v in values[study.split.column]], dtype=bool)


def _is_numeric(study: StudySchema, name: str) -> bool:
    predictor = study.predictor(name)
    if predictor is not None:
        return predictor.type == "numeric"
    return name == study.outcome.time_variable or (
        name == study.outcome.variable and study.outcome.type in ("continuous", "count"))


def _apply_filter(study: StudySchema, rule: Filter, column: np.ndarray) -> np.ndarray:
    """Rows that satisfy ``rule``; a missing value never does."""
    numeric = _is_numeric(study, rule.variable)
    convert = float if numeric else canonical
    target = [convert(v) for v in rule.value] if isinstance(rule.value, list) else convert(rule.value)
    out = np.zeros(len(column), dtype=bool)
    for i, raw in enumerate(column):
        if raw is None:
            continue
        value = float(raw) if numeric else raw
        if rule.op == "in":
            out[i] = value in target
        elif rule.op == "not in":
            out[i] = value not in target
        else:
            out[i] = _COMPARE[rule.op](value, target)
    return out


def encode(study: StudySchema, values: dict[str, np.ndarray]) -> np.ndarray:
    """Encode parsed canonical values per :meth:`StudySchema.feature_names` (float matrix)."""
    n = len(next(iter(values.values())))
    blocks = [_encode_variable(v, values[v.name]) for v in study.predictors]
    return np.hstack(blocks) if blocks else np.zeros((n, 0))


def _encode_variable(variable: Variable, column: np.ndarray) -> np.ndarray:
    missing = np.array([v is None for v in column], dtype=bool)
    if variable.type == "numeric":
        low, high = variable.bounds  # type: ignore[misc]
        block = [np.array([(low + high) / 2 if v is None else float(v) for v in column], dtype=float)]
    elif variable.type == "binary":
        block = [np.array([v == variable.levels[1] for v in column], dtype=float)]
    else:
        block = [np.array([v == level for v in column], dtype=float)
                 for level in variable.levels if level != variable.reference]
    if variable.missing == "level":
        block.append(missing.astype(float))
    return np.column_stack(block)


def _outcome(study: StudySchema, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    outcome = study.outcome
    if outcome.type == "binary":
        return np.array([v in outcome.positive for v in values[outcome.variable]], dtype=float), None
    if outcome.type == "time_to_event":
        time = np.array([float(v) for v in values[outcome.time_variable]], dtype=float)
        return time, np.array([v in outcome.event_values for v in values[outcome.event_variable]], dtype=float)
    return np.array([float(v) for v in values[outcome.variable]], dtype=float), None


def _split(study: StudySchema, values: dict[str, np.ndarray], patient_id: np.ndarray) -> np.ndarray:
    rule = study.split
    if rule.method == "column":
        return np.array(["train" if v in rule.train else "test" for v in values[rule.column]], dtype="<U5")
    return np.array(["test" if seeded_fraction(rule.seed, str(pid)) < rule.test_fraction else "train"
                     for pid in patient_id], dtype="<U5")


def seeded_fraction(seed: int, patient_id: str) -> float:
    """A patient's deterministic position in [0, 1): SHA-256 of ``f"{seed}:{patient_id}"``.

    >>> round(seeded_fraction(42, "p1"), 6) == round(seeded_fraction(42, "p1"), 6)
    True
    """
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _groups(study: StudySchema, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per fairness attribute, the group index of each row (-1 when in no group or missing)."""
    out = {}
    for attribute in study.fairness:
        numeric = study.predictor(attribute.variable).type == "numeric"  # type: ignore[union-attr]
        index = np.full(len(values[attribute.variable]), -1, dtype=int)
        for i, v in enumerate(values[attribute.variable]):
            if v is None:
                continue
            for j, group in enumerate(attribute.groups):
                inside = group.low <= float(v) < group.high if numeric else v in group.levels  # type: ignore[operator]
                if inside:
                    index[i] = j
                    break
        out[attribute.name] = index
    return out
