"""The study schema: what a project studies, declared as data in the project file's ``[study]`` table.

A study names its outcome, its predictors (type, labels, unit, public bounds, levels, missing-value
handling and a data-minimisation justification), its fairness attributes and their groups, its
inclusion filters and its train/test split rule. The approval signs :meth:`StudySchema.sha256`;
every label in every report comes from here.

Values are compared as *canonical strings* (:func:`canonical`), so ``"1"``, ``" 1 "`` and ``"1.0"``
are the same level.

>>> study = StudySchema.model_validate({
...     "id": "demo", "title_fr": "Démo", "title_en": "Demo",
...     "outcome": {"variable": "death", "label_fr": "Décès", "label_en": "Death",
...                 "type": "binary", "positive": ["Yes"]},
...     "predictors": [
...         {"name": "age", "label_fr": "Âge", "label_en": "Age", "type": "numeric", "unit": "years",
...          "bounds": [18, 100], "justification": "main confounder"},
...         {"name": "ethnicity", "label_fr": "Origine", "label_en": "Ethnicity", "type": "categorical",
...          "levels": ["white", "black", "other"], "missing": "level", "justification": "equity"}],
...     "split": {"method": "seeded", "test_fraction": 0.25, "seed": 42}})
>>> study.feature_names()
('age', 'ethnicity=black', 'ethnicity=other', 'ethnicity=missing')
>>> study.feature_labels("fr")[:2]
('Âge (years)', 'Origine : black')
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fedsante.data._checks import split_problems, study_problems
from fedsante.common.errors import ConfigError

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
MISSING_LEVEL = "missing"


def canonical(value: Any) -> str:
    """The canonical text of a raw value: stripped, and integers written without a decimal part.

    >>> canonical(" 4.0 "), canonical("1"), canonical("2.5"), canonical(" Yes"), canonical(3)
    ('4', '1', '2.5', 'Yes', '3')
    """
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return text


def _canonical_list(values: list[Any]) -> list[str]:
    return [canonical(v) for v in values]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outcome(_Model):
    """The outcome: binary (with its positive values), continuous, count or time-to-event."""

    variable: Identifier
    label_fr: str
    label_en: str
    type: Literal["binary", "continuous", "count", "time_to_event"]
    positive: list[str] = []
    negative: list[str] = []
    time_variable: str = ""
    event_variable: str = ""
    event_values: list[str] = []

    _canon = field_validator("positive", "negative", "event_values", mode="before")(
        classmethod(lambda cls, v: _canonical_list(v) if isinstance(v, list) else v))

    @model_validator(mode="after")
    def _check(self) -> Outcome:
        if self.type == "binary":
            if not self.positive:
                raise ValueError("a binary outcome needs 'positive', the values counted as positive, "
                                 "e.g. positive = [\"Yes\"]")
            if set(self.positive) & set(self.negative):
                raise ValueError(f"values {sorted(set(self.positive) & set(self.negative))} are both "
                                 "'positive' and 'negative'; list each value once")
        elif self.positive or self.negative:
            raise ValueError(f"'positive' and 'negative' apply to binary outcomes only, not {self.type!r}")
        if self.type == "time_to_event":
            if not (self.time_variable and self.event_variable and self.event_values):
                raise ValueError("a time_to_event outcome needs 'time_variable', 'event_variable' and "
                                 "'event_values' (the values that mean the event happened)")
        elif self.time_variable or self.event_variable or self.event_values:
            raise ValueError("'time_variable', 'event_variable' and 'event_values' apply to time_to_event "
                             f"outcomes only, not {self.type!r}")
        return self

    def variables(self) -> tuple[str, ...]:
        """The study variables a hospital maps for this outcome."""
        if self.type == "time_to_event":
            return (self.time_variable, self.event_variable)
        return (self.variable,)


class Variable(_Model):
    """A predictor: its type, labels, unit, public bounds or levels, and missing-value handling."""

    name: Identifier
    label_fr: str
    label_en: str
    type: Literal["numeric", "binary", "categorical"]
    unit: str = ""
    bounds: tuple[float, float] | None = None
    levels: list[str] = []
    reference: str = ""
    missing: Literal["drop", "level"] = "drop"
    justification: str = Field(min_length=1)
    sensitive: bool = False

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("type") == "binary" and not data.get("levels"):
            data["levels"] = ["0", "1"]
        if isinstance(data.get("levels"), list):
            data["levels"] = _canonical_list(data["levels"])
            if data["levels"] and not data.get("reference"):
                data["reference"] = data["levels"][0]
        if data.get("reference") not in (None, ""):
            data["reference"] = canonical(data["reference"])
        return data

    @model_validator(mode="after")
    def _check(self) -> Variable:
        if self.type == "numeric":
            if self.bounds is None:
                raise ValueError(f"numeric variable {self.name!r} needs public 'bounds = [low, high]' "
                                 "(used to clip and scale without looking at the data)")
            low, high = self.bounds
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"'bounds' of {self.name!r} must be finite with low < high, got {list(self.bounds)}")
            if self.levels:
                raise ValueError(f"numeric variable {self.name!r} takes 'bounds', not 'levels'")
            return self
        if self.bounds is not None:
            raise ValueError(f"{self.type} variable {self.name!r} takes 'levels', not 'bounds'")
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"'levels' of {self.name!r} repeat a value: {self.levels}")
        if self.type == "binary" and len(self.levels) != 2:
            raise ValueError(f"binary variable {self.name!r} needs exactly 2 levels [negative, positive], "
                             f"got {self.levels}")
        if self.type == "categorical" and len(self.levels) < 2:
            raise ValueError(f"categorical variable {self.name!r} needs at least 2 levels, got {self.levels}")
        if MISSING_LEVEL in self.levels and self.missing == "level":
            raise ValueError(f"{self.name!r} declares a level 'missing' and missing = 'level'; rename the level")
        if self.reference not in self.levels:
            raise ValueError(f"reference {self.reference!r} of {self.name!r} is not one of its levels "
                             f"{self.levels}; choose one of them")
        return self

    def feature_names(self) -> tuple[str, ...]:
        """The encoded columns of this predictor, in order."""
        if self.type == "categorical":
            names = [f"{self.name}={level}" for level in self.levels if level != self.reference]
        else:
            names = [self.name]
        if self.missing == "level":
            names.append(f"{self.name}={MISSING_LEVEL}")
        return tuple(names)

    def feature_labels(self, lang: Literal["fr", "en"]) -> tuple[str, ...]:
        """Human labels of the encoded columns (French typography puts a space before ':')."""
        label = self.label_fr if lang == "fr" else self.label_en
        colon = " : " if lang == "fr" else ": "
        if self.type == "categorical":
            labels = [f"{label}{colon}{level}" for level in self.levels if level != self.reference]
        else:
            labels = [f"{label} ({self.unit})" if self.unit else label]
        if self.missing == "level":
            labels.append(f"{label}{colon}{'manquant' if lang == 'fr' else 'missing'}")
        return tuple(labels)


class Group(_Model):
    """A fairness group: a set of levels, or a numeric band ``low <= x < high``."""

    name: str = Field(min_length=1)
    label_fr: str
    label_en: str
    levels: list[str] = []
    low: float | None = None
    high: float | None = None

    _canon = field_validator("levels", mode="before")(
        classmethod(lambda cls, v: _canonical_list(v) if isinstance(v, list) else v))

    @model_validator(mode="after")
    def _check(self) -> Group:
        band = self.low is not None or self.high is not None
        if band == bool(self.levels):
            raise ValueError(f"group {self.name!r} needs either 'levels' or both 'low' and 'high'")
        if band:
            if self.low is None or self.high is None or not (math.isfinite(self.low) and math.isfinite(self.high)) \
                    or self.low >= self.high:
                raise ValueError(f"group {self.name!r} needs finite 'low' < 'high', got {self.low}, {self.high}")
        return self


class FairnessAttribute(_Model):
    """A predictor whose groups the fairness report compares."""

    variable: Identifier
    name: str = ""
    label_fr: str
    label_en: str
    groups: list[Group] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and data.get("variable"):
            data = {**data, "name": data["variable"]}
        return data


FilterValue = float | str | list[float | str]


class Filter(_Model):
    """An inclusion filter on a study variable's parsed value; rows that fail it are excluded."""

    variable: Identifier
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
    value: FilterValue

    @model_validator(mode="after")
    def _check(self) -> Filter:
        if self.op in ("in", "not in") and not isinstance(self.value, list):
            raise ValueError(f"filter on {self.variable!r} with op {self.op!r} needs a list value, e.g. [1, 2]")
        if self.op not in ("in", "not in") and isinstance(self.value, list):
            raise ValueError(f"filter on {self.variable!r} with op {self.op!r} needs a single value, not a list")
        return self


class Split(_Model):
    """The train/test rule: a local ``column`` mapped like a variable, or a ``seeded`` hash of the id."""

    method: Literal["column", "seeded"]
    column: str = ""
    train: list[str] = []
    test: list[str] = []
    test_fraction: float = 0.25
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _infer_method(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "method" not in data:
                data["method"] = "column" if "column" in data else "seeded"
            for key in ("train", "test"):
                if isinstance(data.get(key), list):
                    data[key] = _canonical_list(data[key])
        return data

    @model_validator(mode="after")
    def _check(self) -> Split:
        problems = split_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class StudySchema(_Model):
    """A study: outcome, predictors, fairness attributes, filters and split rule."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
    title_fr: str
    title_en: str
    outcome: Outcome
    predictors: list[Variable] = Field(min_length=1)
    fairness: list[FairnessAttribute] = []
    filters: list[Filter] = []
    split: Split

    @model_validator(mode="after")
    def _check(self) -> StudySchema:
        problems = study_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of the study (what an approval signs)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def predictor(self, name: str) -> Variable | None:
        """The predictor called ``name``, or None."""
        return next((v for v in self.predictors if v.name == name), None)

    def feature_names(self) -> tuple[str, ...]:
        """The encoded columns, in order (see :meth:`Variable.feature_names`)."""
        return tuple(name for v in self.predictors for name in v.feature_names())

    def feature_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` public bounds per encoded column: a numeric's bounds, (0, 1) for indicators."""
        pairs = [v.bounds if v.type == "numeric" and not name.endswith(f"={MISSING_LEVEL}") else (0.0, 1.0)
                 for v in self.predictors for name in v.feature_names()]
        return np.array([p[0] for p in pairs], dtype=float), np.array([p[1] for p in pairs], dtype=float)

    def feature_labels(self, lang: Literal["fr", "en"] = "en") -> tuple[str, ...]:
        """Human labels per encoded column, in French (``"fr"``) or English (``"en"``)."""
        if lang not in ("fr", "en"):
            raise ValueError(f"lang must be 'fr' or 'en'. Got {lang!r} instead.")
        return tuple(label for v in self.predictors for label in v.feature_labels(lang))

    def variables(self) -> tuple[str, ...]:
        """Every study variable a hospital maps: outcome, predictors, and the split column if any."""
        names = [*self.outcome.variables(), *(v.name for v in self.predictors)]
        if self.split.method == "column":
            names.append(self.split.column)
        return tuple(names)

    def sensitive_variables(self) -> tuple[str, ...]:
        """Names of the predictors flagged ``sensitive`` (for reviewers)."""
        return tuple(v.name for v in self.predictors if v.sensitive)


def parse_study(data: dict, *, source: str = "study") -> StudySchema:
    """Validate a study dict; raise ConfigError listing every problem with its field path."""
    try:
        return StudySchema.model_validate(data)
    except ValidationError as exc:
        problems = study_validation_problems(exc)
        raise ConfigError(
            f"{source}: the study is invalid ({len(problems)} problem{'s' if len(problems) > 1 else ''}): "
            + "; ".join(problems) + ". Fix these fields of the [study] table.",
            errors=problems,
        ) from None


def study_validation_problems(exc: ValidationError) -> list[str]:
    """One 'field.path: problem' line per problem (cross-field problems carry their own path)."""
    problems = []
    for error in exc.errors():
        where = ".".join(map(str, error["loc"]))
        message = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        problems += [f"{where}: {line}" if where else line for line in message.splitlines()]
    return problems


def load_study(path: str | Path) -> StudySchema:
    """Load a study from a TOML file (the study at top level, or in a ``[study]`` table)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Study file {path} does not exist. Fix the path.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid UTF-8 TOML ({exc}). Fix the syntax.") from None
    return parse_study(data.get("study", data), source=str(path))
