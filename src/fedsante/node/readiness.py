"""A node's local feasibility report for a study: counts and mapping problems, for the operator's screen only.

``fedsante node check --project REF`` compiles this node's dataset for the project's study with its
mapping and prints how many rows remain, why the others were excluded, the rows per split and per
outcome class, and whether each meets k_min. These are true counts and raw values: nothing here is
sent to the desk (the desk only ever receives the "meets"/reason codes of
:mod:`fedsante.node.feasibility`).
"""

from __future__ import annotations

from dataclasses import dataclass

from fedsante.data.cohort import REASONS, compile_cohort
from fedsante.data.mapping import Mapping, MappingProblem, mapping_problems
from fedsante.data.study import StudySchema
from fedsante.common.errors import DataError
from fedsante.node.config import NodeConfig
from fedsante.node.datasets import format_problem, load_raw, resolve_dataset

__all__ = ["Readiness", "format_readiness", "readiness"]


@dataclass(frozen=True)
class Readiness:
    """True counts of a node's cohort for a study (LOCAL only)."""

    dataset: str
    source: str
    study: str
    k_min: int
    rows: int
    """Rows in the file."""
    kept: int
    """Rows left in the cohort (rows with an unmapped value are excluded and counted here)."""
    excluded: dict[str, int]
    counts: dict[str, int]
    """``train_rows``, ``test_rows`` and, for a binary outcome, ``train_positive`` ... ``test_negative``."""
    problems: tuple[MappingProblem, ...]
    error: str = ""
    """Why no cohort could be compiled (an absent column, no row left), else ''."""

    @property
    def ok(self) -> bool:
        """No mapping problem and a cohort was compiled."""
        return not self.problems and not self.error

    def below_k_min(self) -> list[str]:
        """The counts below k_min (a count of 0 is a shortfall too)."""
        return [name for name, count in self.counts.items() if count < self.k_min]


def readiness(cfg: NodeConfig, study: StudySchema, mapping: Mapping, *, k_min: int) -> Readiness:
    """Compile this node's dataset for ``study`` (rows with unmapped values excluded) and count."""
    decl = resolve_dataset(cfg)
    raw = load_raw(decl)
    problems = tuple(mapping_problems(raw, study, mapping))
    common = {"dataset": decl.name, "source": raw.source, "study": study.id, "k_min": k_min, "rows": raw.n_rows,
              "problems": problems}
    if any(p.value is None for p in problems):
        return Readiness(**common, kept=0, excluded=dict.fromkeys(REASONS, 0), counts={},
                         error="a mapped column is absent from the file")
    try:
        cohort = compile_cohort(raw, study, mapping, dataset=decl.name, on_unmapped="exclude")
    except DataError as exc:
        return Readiness(**common, kept=0, excluded=dict.fromkeys(REASONS, 0), counts={}, error=exc.message)
    feasibility = cohort.feasibility()
    counts = {f"{split}_rows": n for split, n in feasibility.by_split.items()}
    for split, classes in feasibility.by_class.items():
        counts[f"{split}_positive"] = classes["1"]
        counts[f"{split}_negative"] = classes["0"]
    return Readiness(**common, kept=feasibility.rows, excluded=dict(cohort.excluded), counts=counts)


_LABELS = {"train_rows": "training rows", "test_rows": "test rows",
           "train_positive": "training rows with the outcome", "train_negative": "training rows without the outcome",
           "test_positive": "test rows with the outcome", "test_negative": "test rows without the outcome"}


def format_readiness(report: Readiness) -> list[str]:
    """The report as lines of text for the operator's screen (true counts and raw values: LOCAL).

    >>> r = Readiness(dataset="trial", source="t.csv", study="s", k_min=11, rows=40, kept=30,
    ...               excluded={"missing value": 10}, counts={"train_rows": 20, "test_rows": 10}, problems=())
    >>> print("\\n".join(format_readiness(r)))
    trial (t.csv) for study 's': 30 of 40 rows in the cohort (LOCAL counts: nothing is sent).
    excluded: 10 missing value
    training rows: 20 (meets k_min = 11)
    test rows: 10 (BELOW k_min = 11)
    """
    lines = [f"{report.dataset} ({report.source}) for study {report.study!r}: {report.kept} of {report.rows} rows "
             "in the cohort (LOCAL counts: nothing is sent)."]
    excluded = [f"{n} {reason}" for reason, n in report.excluded.items() if n]
    lines.append("excluded: " + (", ".join(excluded) if excluded else "none"))
    for name, count in report.counts.items():
        verdict = "meets" if count >= report.k_min else "BELOW"
        lines.append(f"{_LABELS.get(name, name)}: {count} ({verdict} k_min = {report.k_min})")
    if report.error:
        lines.append(f"no cohort: {report.error}")
    if report.problems:
        lines.append(f"{len(report.problems)} mapping problem(s); fix the values or the mapping (--map):")
        lines += [f"  {format_problem(p)}" for p in report.problems]
    return lines
