"""The project file template: the packaged example, with every parameter of an algorithm and a study.

:func:`project_template` starts from ``examples/project-heart.toml`` (a project that passes every
check of the charter), then lists, as TOML comments in a ``[parameters]`` table, each parameter of
the chosen algorithm with its default, bounds and meaning, read from its pydantic model; and it ends
with a commented ``[study]`` table to copy for one's own data.

>>> print(parameter_comments(get_algorithm("logreg").params_model)[0])
# rounds = 15
>>> print(parameter_comments(get_algorithm("logreg").params_model)[1])
#     Integer, 1 <= rounds <= 1000. Number of FedAvg rounds.
"""

from __future__ import annotations

import json
import textwrap
from importlib.resources import files
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fedsante.algorithms.catalogue import get_algorithm
from fedsante.common.errors import ConfigError

EXAMPLE_FILE = "project-heart.toml"
WIDTH = 110

STUDY_LINES = '''\
# The study: `study = "heart"` above uses the bundled study of the heart example
# (fedsante/data/studies/heart.toml). For your own data, delete that line and uncomment the
# [study] table below (each hospital maps its columns onto these variables when it accepts the
# project; docs/data.md). The charter checks that the study is declared, that every predictor is
# justified, that the algorithm supports the outcome type and, when the fairness report is
# requested, that a fairness attribute is declared; sensitive variables and fairness attributes
# are flagged to reviewers. Update data_categories and population to match.
#
# [study]
# id = "mi-mortality"
# title_fr = "Mortalité à 30 jours après un infarctus du myocarde"
# title_en = "30-day mortality after myocardial infarction"
#
# [study.outcome]
# variable = "death_30d"
# label_fr = "Décès à 30 jours"
# label_en = "Death within 30 days"
# type = "binary"               # or "continuous", "count", "time_to_event"
# positive = ["Yes"]            # the values counted as the positive class
#
# [[study.predictors]]
# name = "age"
# label_fr = "Âge"
# label_en = "Age"
# type = "numeric"
# unit = "years"
# bounds = [18, 110]            # public bounds: values are clipped and scaled with them
# justification = "Main confounder of mortality."
#
# [[study.predictors]]
# name = "sex"
# label_fr = "Sexe"
# label_en = "Sex"
# type = "categorical"
# levels = ["female", "male"]
# reference = "female"          # the level without its own coefficient
# sensitive = true              # flagged to reviewers
# justification = "Risk factor; needed to check fairness between women and men."
#
# [[study.predictors]]
# name = "killip"
# label_fr = "Classe de Killip"
# label_en = "Killip class"
# type = "categorical"
# levels = ["1", "2", "3", "4"]
# reference = "1"
# missing = "level"             # missing values become their own column (default "drop": the row is left out)
# justification = "Severity of heart failure at admission, a strong predictor of death."
#
# [[study.fairness]]
# variable = "sex"
# label_fr = "Sexe"
# label_en = "Sex"
# groups = [
#     { name = "female", label_fr = "Femmes", label_en = "Women", levels = ["female"] },
#     { name = "male", label_fr = "Hommes", label_en = "Men", levels = ["male"] },
# ]
#
# [[study.filters]]             # inclusion: rows that fail a filter are left out
# variable = "age"
# op = ">="
# value = 18
#
# [study.split]
# method = "seeded"             # a hash of the patient id with this seed; or method = "column"
# test_fraction = 0.25
# seed = 42
'''


def project_template(algorithm: str = "logreg") -> str:
    """A complete project file for ``algorithm``: the example, its parameters listed, a study to copy."""
    entry = get_algorithm(algorithm)
    text = (files("fedsante") / "examples" / EXAMPLE_FILE).read_text(encoding="utf-8")
    outcomes = ", ".join(sorted(entry.outcome_types))
    text = _replace_line(text, 'algorithm = "logreg"', f'algorithm = "{entry.id}"  # {entry.description} '
                         f"Outcomes: {outcomes}.")
    text = _replace_line(text, "parameters = {}", "# parameters: see the [parameters] table after [[controllers]]")
    text = _replace_line(text, 'study = "heart"', 'study = "heart"  # the bundled study; for your own data, see the '
                         "commented [study] table at the end")
    return "\n".join([text.rstrip("\n"), "", *_parameters_table(entry.id, entry.params_model), "", STUDY_LINES])


def _replace_line(text: str, start: str, new: str) -> str:
    lines = text.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith(start)]
    if len(found) != 1:
        raise ConfigError(f"The example project {EXAMPLE_FILE} should have one line starting with {start!r}; "
                          f"found {len(found)}.")
    lines[found[0]] = new
    return "\n".join(lines) + "\n"


def _parameters_table(algorithm: str, model: type[BaseModel]) -> list[str]:
    return [f"# Parameters of algorithm {algorithm!r}: each line is the default; uncomment a line to change it",
            "# (within parameter_bounds if you set them). Parameters 'set by the desk' are best left unset: the",
            "# desk sets them when a run starts, from the approved epsilon, and every hospital checks them.",
            "[parameters]", *parameter_comments(model)]


def parameter_comments(model: type[BaseModel]) -> list[str]:
    """Comment lines for every parameter of ``model``: the default, then type, bounds and meaning."""
    derived = getattr(model, "DERIVED", ())
    return [line for name, info in model.model_fields.items()
            for line in parameter_comments_of(name, info, derived=name in derived)]


def parameter_comments_of(name: str, info: FieldInfo, *, derived: bool = False) -> list[str]:
    """Two or more comment lines for one parameter: ``# name = default``, then what it is."""
    first = f"# {name} = {_toml(info.default)}" if info.default is not None else f"# {name}: unset by default"
    text = f"{_kind(info.annotation)}{_bounds(name, info)}. {info.description or ''}".strip()
    text += " Set by the desk when a run starts." if derived else ""
    return [first, *textwrap.wrap(text, WIDTH, initial_indent="#     ", subsequent_indent="#     ")]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _kind(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "One of " + ", ".join(repr(a) for a in args)
    if origin in (Union, UnionType):
        kinds = [_kind(a) for a in args if a is not NoneType]
        return (" or ".join(kinds) + " (or unset)") if NoneType in args else " or ".join(kinds)
    names = {int: "Integer", float: "Number", bool: "true or false", str: "Text"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(name: str, info: FieldInfo) -> str:
    low = high = ""
    length = []
    for rule in info.metadata:
        if isinstance(rule, Ge):
            low = f"{_number(rule.ge)} <= "
        elif isinstance(rule, Gt):
            low = f"{_number(rule.gt)} < "
        elif isinstance(rule, Le):
            high = f" <= {_number(rule.le)}"
        elif isinstance(rule, Lt):
            high = f" < {_number(rule.lt)}"
        elif isinstance(rule, MaxLen):
            length.append(f"at most {rule.max_length} characters")
        elif isinstance(rule, MinLen):
            length.append(f"at least {rule.min_length} characters")
    bounds = f", {low}{name}{high}" if low or high else ""
    return bounds + "".join(f", {part}" for part in length)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:g}"
    return str(value)
