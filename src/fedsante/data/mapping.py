"""Mapping: how a hospital maps its local columns and values onto a study's variables.

A mapping names, for each study variable, the local column that holds it and optionally a
translation of local values into the study's levels. Unmapped variables default to a local column of
the same name. Problems (:func:`mapping_problems`) name the file, column, raw value and count: they
are LOCAL reports and never leave the hospital.

>>> parse_map_option("ethnicity=Race:{Black:black,White:white}")
VariableMapping(variable='ethnicity', column='Race', values={'Black': 'black', 'White': 'white'})
>>> parse_map_option('site="Centre, Nord":{"a:b":x}').values
{'a:b': 'x'}
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fedsante.data.study import StudySchema, canonical
from fedsante.common.errors import ConfigError, field_problems

if TYPE_CHECKING:
    from fedsante.data.sources import RawTable


class VariableMapping(BaseModel):
    """One study variable: the local ``column`` that holds it and a local -> study ``values`` map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variable: str = Field(min_length=1)
    column: str = Field(min_length=1)
    values: dict[str, str] = {}

    @field_validator("values", mode="before")
    @classmethod
    def _canonical_values(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {canonical(k): canonical(v) for k, v in values.items()}
        return values


class Mapping(BaseModel):
    """The mappings of a dataset onto a study, one per study variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variables: list[VariableMapping] = []

    @model_validator(mode="after")
    def _unique(self) -> Mapping:
        names = Counter(m.variable for m in self.variables)
        twice = sorted(n for n, c in names.items() if c > 1)
        if twice:
            raise ValueError(f"variables {twice} are mapped more than once; map each study variable once")
        return self

    def get(self, variable: str) -> VariableMapping | None:
        """The mapping of ``variable``, or None."""
        return next((m for m in self.variables if m.variable == variable), None)

    def for_study(self, study: StudySchema) -> Mapping:
        """A complete mapping: every study variable, unmapped ones to a local column of the same name.

        >>> from fedsante.data.bundled import bundled_study
        >>> Mapping().for_study(bundled_study("heart")).get("cp").column
        'cp'
        """
        known = study.variables()
        unknown = [m.variable for m in self.variables if m.variable not in known]
        if unknown:
            raise ConfigError(
                f"The mapping names {', '.join(map(repr, unknown))}, not variables of study {study.id!r} "
                f"({', '.join(known)}). Fix the variable name in the mapping.",
                errors=[f"map.{name}: not a variable of study {study.id!r}" for name in unknown])
        return Mapping(variables=[self.get(name) or VariableMapping(variable=name, column=name) for name in known])


def parse_map_option(text: str) -> VariableMapping:
    """Parse the CLI form ``variable=Column`` or ``variable=Column:{local:study,...}``.

    Values (and the column) may be double-quoted when they contain ``,``, ``:``, ``{`` or ``}``.
    """
    tokens = _tokens(text)
    shape = [t for t, _ in tokens]
    if shape[:3] != ["word", "=", "word"] or (len(shape) > 3 and shape[3:5] != [":", "{"]):
        raise ConfigError(f"--map {text!r}: expected 'variable=Column' or 'variable=Column:{{local:study,...}}', "
                          "e.g. ethnicity=Race:{Black:black,White:white}")
    values: dict[str, str] = {}
    if len(shape) > 3:
        body = tokens[5:]
        if not body or body[-1][0] != "}":
            raise ConfigError(f"--map {text!r}: the value map must end with '}}'")
        pairs = body[:-1]
        for i in range(0, len(pairs), 4):
            pair = pairs[i:i + 4]
            kinds = [t for t, _ in pair]
            if kinds[:3] != ["word", ":", "word"] or (kinds[3:] and kinds[3:] != [","]):
                raise ConfigError(f"--map {text!r}: the value map must be 'local:study' pairs separated by ','; "
                                  "quote values that contain , : { or }")
            values[pair[0][1]] = pair[2][1]
    try:
        return VariableMapping(variable=tokens[0][1], column=tokens[2][1], values=values)
    except ValidationError as exc:
        raise ConfigError(f"--map {text!r}: {'; '.join(field_problems(exc))}") from None


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "=:{},":
            tokens.append((char, char))
            i += 1
        elif char == '"':
            end = text.find('"', i + 1)
            if end < 0:
                raise ConfigError(f"--map {text!r}: a double quote is not closed")
            tokens.append(("word", text[i + 1:end]))
            i = end + 1
        else:
            end = i
            while end < len(text) and text[end] not in '=:{},"':
                end += 1
            word = text[i:end].strip()
            if word:
                tokens.append(("word", word))
            i = end
    return tokens


def load_mapping(path: str | Path) -> Mapping:
    """Load a mapping from the ``[map]`` table of a TOML file.

    ``age = "AGE_YRS"`` maps a variable to a column; ``[map.ethnicity]`` with ``column = "Race"`` and
    ``values = {Black = "black"}`` also translates values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Mapping file {path} does not exist. Fix the path.")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("map", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid UTF-8 TOML ({exc}). Fix the syntax.") from None
    entries, problems = [], []
    for name, entry in table.items():
        fields = {"column": entry} if isinstance(entry, str) else entry
        try:
            entries.append(VariableMapping.model_validate({"variable": name, **fields}))
        except (ValidationError, TypeError) as exc:
            problems += field_problems(exc, prefix=f"map.{name}.") if isinstance(exc, ValidationError) else [
                f"map.{name}: expected a column name or a table with 'column' and 'values'"]
    if problems:
        raise ConfigError(f"{path}: the [map] table is invalid: {'; '.join(problems)}.", errors=problems)
    return Mapping(variables=entries)


@dataclass(frozen=True)
class MappingProblem:
    """A value (or column) of a local file that the study cannot use. LOCAL only: it names raw values."""

    file: str
    variable: str
    column: str
    value: str | None
    count: int
    message: str


def mapping_problems(raw: RawTable, study: StudySchema, mapping: Mapping) -> list[MappingProblem]:
    """Every mapped column absent from the file and every value the study cannot read, with counts."""
    mapping = mapping.for_study(study)
    problems = []
    for entry in mapping.variables:
        if entry.column not in raw.columns:
            problems.append(MappingProblem(
                file=raw.source, variable=entry.variable, column=entry.column, value=None, count=raw.n_rows,
                message=f"column {entry.column!r} (study variable {entry.variable!r}) is not in the file; "
                        f"map the variable to one of: {', '.join(raw.columns)}"))
            continue
        check = value_check(study, entry.variable)
        counts = Counter(v for v in map_values(raw.columns[entry.column], entry) if v is not None)
        for value, count in sorted(counts.items()):
            expected = check(value)
            if expected:
                problems.append(MappingProblem(
                    file=raw.source, variable=entry.variable, column=entry.column, value=value, count=count,
                    message=f"{count} rows of column {entry.column!r} hold {value!r}, but {entry.variable!r} "
                            f"expects {expected}; fix the values or map them, e.g. "
                            f"--map {entry.variable}={entry.column}:{{{value}:...}}"))
    return problems


def map_values(values: Any, entry: VariableMapping) -> list[str | None]:
    """Canonical study values of a raw column: translated by ``entry.values``; '' or None is missing."""
    out: list[str | None] = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        text = canonical(value)
        text = entry.values.get(text, text)
        out.append(text or None)
    return out


def value_check(study: StudySchema, variable: str):
    """A function returning '' when a canonical value suits ``variable``, else what was expected."""
    predictor = study.predictor(variable)
    outcome = study.outcome
    if predictor is not None and predictor.type != "numeric":
        levels = predictor.levels
        return lambda v: "" if v in levels else f"one of the levels {', '.join(levels)}"
    if predictor is not None or variable == outcome.time_variable or (
            variable == outcome.variable and outcome.type in ("continuous", "count")):
        return lambda v: "" if _finite(v) else "a number"
    if variable == outcome.variable and outcome.type == "binary" and outcome.negative:
        known = [*outcome.positive, *outcome.negative]
        return lambda v: "" if v in known else f"one of {', '.join(known)}"
    return lambda v: ""


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
