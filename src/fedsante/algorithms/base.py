"""The algorithm plug-in interface: what a catalogue entry declares and implements.

An algorithm is one package. It declares its parameters (a pydantic model with bounds), the task
kinds its node handlers answer, which of them leave a node only under secure aggregation, what it
releases (arrays of fixed length, metrics computed per outcome class), the outcome types it supports
and the modules its code hash covers. It implements two sides:

* :meth:`Algorithm.run`, at the desk: the plan of stages, driven through a
  :class:`~fedsante.federation.coordinator.RunContext` (send a stage, run a secure sum); it sees
  only what the nodes release;
* :meth:`Algorithm.execute`, at the node: one task on the node's cohort, returning arrays and
  metrics that then pass the node's disclosure control.

The catalogue (:mod:`fedsante.algorithms.catalogue`) registers entries; nothing else imports a
concrete algorithm. A task never carries code: it names an entry and the hash of its code, which
the node compares with what its hospital installed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from fedsante import __version__
from fedsante.common.errors import BadRequest, field_problems
from fedsante.federation.approval import AlgorithmRef
from fedsante.federation.layout import Layout
from fedsante.federation.secure import sum_config
from fedsante.privacy.secagg import SecAggConfig

if TYPE_CHECKING:
    from fedsante.federation.coordinator import RunContext, RunOutcome
    from fedsante.privacy.accountant import PrivacyPlan

Arrays = dict[str, np.ndarray]
Metrics = dict[str, float | None]


class AlgorithmParams(BaseModel):
    """Base of every algorithm's parameters: frozen, unknown names refused.

    Differential privacy hooks: an algorithm whose releases are noised overrides :attr:`dp`,
    :attr:`calibrated` and :meth:`privacy_plan`; the defaults describe exact releases.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    DERIVED: ClassVar[tuple[str, ...]] = ()
    """Parameters the desk sets when a run starts (noise multipliers...); each node checks them itself."""

    @property
    def dp(self) -> bool:
        return False

    @property
    def calibrated(self) -> bool:
        return True

    @property
    def mechanism(self) -> str:
        """The differential-privacy mechanism ('record', 'client'...), or 'none'."""
        return "none"

    def privacy_plan(self) -> PrivacyPlan | None:
        """Every release the run makes at one node, or None when nothing is noised."""
        return None

    def for_run(self, *, epsilon: float | None, delta: float | None, n_nodes: int) -> AlgorithmParams:
        """The parameters a run uses: under DP, the derived ones set so that the run spends ``epsilon``.

        Raises :class:`~fedsante.privacy.accountant.BudgetExceeded` when the run would spend more.
        """
        return self


@cache
def code_hash(modules: tuple[str, ...]) -> str:
    """SHA-256 over the source files of ``modules`` (module name, then bytes, in the given order)."""
    digest = hashlib.sha256()
    for name in modules:
        source = Path(import_module(name).__file__ or "")
        digest.update(name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


class Algorithm(ABC):
    """A catalogue entry. Subclasses set the class attributes and implement :meth:`run` and :meth:`execute`."""

    id: ClassVar[str]
    description: ClassVar[str]
    params_model: ClassVar[type[AlgorithmParams]]
    modules: ClassVar[tuple[str, ...]]
    """Modules whose source the code hash covers (the algorithm's own package, and what it computes with)."""
    version: ClassVar[str] = __version__
    outcome_types: ClassVar[frozenset[str]] = frozenset({"binary"})
    kinds: ClassVar[frozenset[str]]
    """Task kinds the node handlers answer (besides the generic ``feasibility`` and secure-aggregation stages)."""
    secure_kinds: ClassVar[frozenset[str]] = frozenset()
    """Kinds whose result leaves a node only masked, summed with other hospitals' by secure aggregation."""
    update_kinds: ClassVar[frozenset[str]] = frozenset()
    """Kinds that release model updates: refused in plain by a node whose policy requires secure aggregation."""
    test_kinds: ClassVar[frozenset[str]] = frozenset()
    """Kinds computed on the test rows (k_min applies to the test count), the others on the training rows."""
    fixed_arrays: ClassVar[frozenset[str]] = frozenset()
    """Arrays whose length is set by the model, never by the number of patients (the per-patient guard skips them)."""
    per_class_metrics: ClassVar[tuple[str, ...]] = ()
    """Metrics computed on each outcome class, hidden when a class has 1 to k_min - 1 patients."""
    evaluation_kinds: ClassVar[frozenset[str]] = frozenset()
    """Kinds whose metrics describe each outcome class (the class rules of disclosure control apply)."""
    class_arrays: ClassVar[frozenset[str]] = frozenset()
    """Arrays that describe each outcome class, withheld with the per-class metrics."""

    def ref(self) -> AlgorithmRef:
        return AlgorithmRef(id=self.id, version=self.version, code_hash=code_hash(self.hashed_modules()))

    def hashed_modules(self) -> tuple[str, ...]:
        """The declared modules, plus the module that defines this class."""
        own = type(self).__module__
        return self.modules if own in self.modules else (own, *self.modules)

    def parameters(self, raw: Mapping[str, Any], *, prefix: str = "params.") -> AlgorithmParams:
        """Validated parameters; a BadRequest naming every bad field otherwise."""
        try:
            return self.params_model.model_validate(dict(raw))
        except ValidationError as exc:
            problems = field_problems(exc, prefix=prefix)
            raise BadRequest(f"Invalid parameters for algorithm {self.id!r}: " + "; ".join(problems),
                             errors=problems) from None

    @abstractmethod
    async def run(self, context: RunContext) -> RunOutcome:
        """The desk's plan of stages for one run."""

    @abstractmethod
    def execute(self, kind: str, params: AlgorithmParams, arrays: Arrays, cohort: Any, *, node_id: str,
                round_number: int) -> tuple[Arrays, Metrics]:
        """One task at the node on its cohort: the arrays and metrics to release (before disclosure control)."""

    def secure_config(self, kind: str, n_nodes: int, length: int) -> SecAggConfig:
        """The secure-aggregation settings of a ``length``-value vector of ``kind`` among ``n_nodes`` (the node
        refuses a round set up otherwise); by default :func:`~fedsante.federation.secure.sum_config`."""
        return sum_config(n_nodes, length)

    def secure_vector(self, kind: str, arrays: Arrays, metrics: Metrics) -> np.ndarray:
        """What secure aggregation masks for a task summed over the hospitals: by default the arrays in sorted
        name order, then ``n`` (:meth:`Layout.of <fedsante.federation.layout.Layout.of>`); the desk unpacks the
        sum with the same layout."""
        arrays = {**arrays, "n": np.array([float(metrics["n"] or 0.0)])}
        return Layout.of(arrays, last=("n",)).pack(arrays)
