"""A run's result as the desk stores it (:class:`RunResult`) and the names of what it holds per hospital.

The desk builds a :class:`RunResult` from what an algorithm's plan returned
(:meth:`RunResult.from_outcome`) and stores ``result.model_dump(mode="json")`` in the run's row; every
reader parses it once with ``RunResult.model_validate(stored)`` and reads attributes. Model numbers
(coefficients, standardisation, evaluation statistics) must be finite; metrics may be None. Fields added
after the first release (``feature_labels``, ``study``, ``left_out``, ``notes`` and their codes) have
defaults, so results stored before them still load.

>>> result = RunResult(model={"coef": [0.5], "intercept": [-0.1]}, scaler=None, features=["age"],
...                    node_metrics={"a": {"n": 40.0, "auc": None}})
>>> result.label(0, "fr"), result.study is None
('age', True)
>>> RunResult(model={"coef": [float("nan")]}, scaler=None, features=["age"], node_metrics={})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for RunResult
...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, FiniteFloat

if TYPE_CHECKING:
    from fedsante.data.study import StudySchema
    from fedsante.federation.coordinator import RunOutcome

STATS, SUBGROUPS, IMPORTANCE = "stats", "subgroups", "importance"
"""The evaluation statistics of a hospital, the subgroups' statistics, the permutation importance."""

Lang = Literal["fr", "en"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Labels(_Model):
    """The same list of labels in French and English (empty when the run predates the study's labels)."""

    fr: list[str] = []
    en: list[str] = []

    def get(self, lang: Lang) -> list[str]:
        return self.fr if lang == "fr" else self.en


class ScalerRecord(_Model):
    """The global standardisation: mean and scale of each encoded column."""

    mean: list[FiniteFloat]
    scale: list[FiniteFloat]


class StudyInfo(_Model):
    """The study the run answered: its id, the SHA-256 its approval signed, titles and outcome labels."""

    id: str
    sha256: str
    title_fr: str = ""
    title_en: str = ""
    outcome_fr: str = ""
    outcome_en: str = ""

    def title(self, lang: Lang) -> str:
        return self.title_fr if lang == "fr" else self.title_en

    def outcome(self, lang: Lang) -> str:
        return self.outcome_fr if lang == "fr" else self.outcome_en


class AttributeLayout(_Model):
    """One fairness attribute: its groups in the order of the subgroup sums, with the study's labels."""

    name: str
    feature: str = ""
    label_fr: str = ""
    label_en: str = ""
    groups: list[str]
    group_labels: Labels = Labels()

    def label(self, lang: Lang) -> str:
        """The attribute's label in ``lang``, or its name when the study gave none."""
        return (self.label_fr if lang == "fr" else self.label_en) or self.name

    def group_label(self, index: int, lang: Lang) -> str:
        """The label of group ``index`` in ``lang``, or the group's name when missing."""
        labels = self.group_labels.get(lang)
        return (labels[index] if index < len(labels) else "") or self.groups[index]


class FairnessLayout(_Model):
    """How to read the subgroup sums: the attributes in order, the charter's threshold and the DP noise."""

    threshold: float
    noise_sd: float | None = None
    attributes: list[AttributeLayout] = []


class EnergyRecord(_Model):
    """One computation measured by CodeCarbon at a node (kWh, kgCO2e), with the round it belongs to."""

    round: int
    label: str = ""
    duration_s: float = 0.0
    cpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    energy_kwh: float
    emissions_kg: float
    cpu_power_w: float = 0.0
    method: str = ""
    country_iso_code: str = ""
    intensity_g_per_kwh: float
    intensity_source: str


class RunResult(_Model):
    """What a completed run released, as stored in the desk's database."""

    model: dict[str, list[FiniteFloat]]
    scaler: ScalerRecord | None
    features: list[str]
    feature_labels: Labels = Labels()
    study: StudyInfo | None = None
    node_metrics: dict[str, dict[str, float | None]]
    node_stats: dict[str, list[FiniteFloat]] = {}
    node_evaluation: dict[str, dict[str, list[FiniteFloat]]] = {}
    subgroup_stats: list[list[FiniteFloat]] = []
    subgroup_sites: list[str] = []
    fairness: FairnessLayout | None = None
    train_n: dict[str, float] = {}
    round_seconds: list[float] = []
    secure_setup_seconds: float = 0.0
    left_out: dict[str, str] = {}  # node -> plain sentence (English), from the feasibility stage
    dropped: dict[str, str] = {}  # node -> the stage it stopped answering (the run went on without it)
    left_out_codes: dict[str, str] = {}  # node -> reason code (federation.feasibility.REASONS)
    notes: dict[str, list[str]] = {}  # node -> plain sentences (English)
    note_codes: dict[str, list[str]] = {}  # node -> note codes (federation.feasibility.NOTES)
    energy: dict[str, list[EnergyRecord]] = {}
    communication_bytes: dict[str, tuple[int, int]] = {}  # node -> (bytes up, bytes down)

    def label(self, index: int, lang: Lang) -> str:
        """The study's label of encoded column ``index`` in ``lang``, or its raw name for an older result."""
        labels = self.feature_labels.get(lang)
        return labels[index] if index < len(labels) and labels[index] else self.features[index]

    def metric(self, node: str, key: str) -> float | None:
        """One node's metric (None when it did not send it)."""
        return (self.node_metrics.get(node) or {}).get(key)

    def noise_sd(self) -> float | None:
        """Standard deviation of the DP noise on each count a hospital released (None: exact run)."""
        return next((m["noise_sd"] for m in self.node_metrics.values() if m.get("noise_sd") is not None), None)

    @classmethod
    def from_outcome(cls, outcome: RunOutcome, study: StudySchema, fairness: FairnessLayout, *,
                     energy: Mapping[str, Sequence[EnergyRecord]] | None = None,
                     communication_bytes: Mapping[str, tuple[int, int]] | None = None) -> RunResult:
        """The validated result of an algorithm's outcome, with the study's labels and the run's usage."""
        data: dict[str, Any] = {
            "model": {k: v.tolist() for k, v in outcome.params.items()},
            "scaler": None if outcome.scaler is None else {
                "mean": outcome.scaler.mean.tolist(), "scale": outcome.scaler.scale.tolist()},
            "features": list(study.feature_names()),
            "feature_labels": {"fr": list(study.feature_labels("fr")), "en": list(study.feature_labels("en"))},
            "study": StudyInfo(id=study.id, sha256=study.sha256(), title_fr=study.title_fr, title_en=study.title_en,
                               outcome_fr=study.outcome.label_fr, outcome_en=study.outcome.label_en),
            "node_metrics": outcome.node_metrics, "node_stats": outcome.node_stats,
            "node_evaluation": outcome.node_evaluation, "subgroup_stats": outcome.subgroup_stats,
            "subgroup_sites": outcome.subgroup_sites, "fairness": fairness, "train_n": outcome.train_n,
            "round_seconds": outcome.round_seconds, "secure_setup_seconds": outcome.setup_seconds,
            "left_out": outcome.left_out, "left_out_codes": outcome.left_out_codes, "notes": outcome.notes,
            "dropped": outcome.dropped,
            "note_codes": outcome.note_codes, "energy": dict(energy or {}),
            "communication_bytes": dict(communication_bytes or {}),
        }
        return cls.model_validate(data)
