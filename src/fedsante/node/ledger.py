"""The node's privacy-budget ledger: every release debits its dataset, in the node's own audit chain.

Each release a task makes is recorded in the ``task.executed`` entry of that task, under
``details["privacy_debit"]`` (one signed, fsync'ed entry per task): dataset, project, run, task kind
and round, mechanism, the epsilon of that release alone, the epsilon the run has spent so far (its
releases composed by the RDP accountant), delta; the entry carries the time. A dataset's total is the sum over runs of what each run spent
(runs compose sequentially, across projects). Pruning the chain carries the totals of the removed
entries forward in the ``audit.pruned`` marker, so the budget outlives audit retention.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, replace

from fedsante.audit import AuditLog
from fedsante.audit.chain import Entry
from fedsante.privacy.accountant import PrivacyPlan

DEBIT = "privacy_debit"


@dataclass(frozen=True)
class Spent:
    """What a dataset has spent: epsilons and deltas summed over runs."""

    epsilon: float
    delta: float
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        return {"epsilon": self.epsilon, "delta": self.delta, "runs": self.runs}


def _per_run(entries: list[Entry]) -> dict[str, dict[str, tuple[float, float]]]:
    """dataset -> run -> (largest run epsilon so far, delta) over the debits in ``entries``."""
    runs: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for entry in entries:
        if DEBIT in entry.details:
            d = entry.details[DEBIT]
            eps, delta = runs[d["dataset"]].get(d["run"], (0.0, 0.0))
            runs[d["dataset"]][d["run"]] = (max(eps, float(d["run_epsilon"])), max(delta, float(d["delta"])))
    return runs


KINDS = ("moments", "fit", "evaluate", "subgroups")


def planned(plan: PrivacyPlan) -> dict[str, int]:
    """How many releases of each task kind the run's plan allows at one node.

    The plan's evaluation releases are the hospital's own statistics (``evaluate``), then, if any, the
    subgroups' statistics summed by secure aggregation (``subgroups``).
    """
    return {"moments": plan.moments_releases, "fit": plan.rounds, "evaluate": min(plan.evaluation_releases, 1),
            "subgroups": max(plan.evaluation_releases - 1, 0)}


def made(plan: PrivacyPlan, counts: dict[str, int]) -> PrivacyPlan:
    """The plan restricted to the releases actually made (``counts`` by task kind).

    >>> plan = PrivacyPlan(rounds=3, local_steps=5, sampling_rate=0.1, membership_releases=1)
    >>> so_far = made(plan, {"fit": 2})
    >>> (so_far.rounds, so_far.evaluation_releases, so_far.membership_releases)
    (2, 0, 0)
    """
    evaluations = counts.get("evaluate", 0)
    return replace(plan, rounds=counts.get("fit", 0), moments_releases=counts.get("moments", 0),
                   evaluation_releases=evaluations + counts.get("subgroups", 0),
                   membership_releases=evaluations if plan.membership_releases else 0)


def carried_totals(entries: list[Entry]) -> dict:
    """What pruning ``entries`` must carry forward: the totals they hold, plus earlier carried totals."""
    totals = _totals(entries)
    return {"privacy": {dataset: spent.as_dict() for dataset, spent in totals.items()}}


def _totals(entries: list[Entry]) -> dict[str, Spent]:
    base: dict[str, Spent] = {}
    for entry in entries:
        if entry.action == "audit.pruned":
            for dataset, spent in entry.details.get("carried", {}).get("privacy", {}).items():
                before = base.get(dataset, Spent(0.0, 0.0, 0))
                base[dataset] = Spent(before.epsilon + spent["epsilon"], before.delta + spent["delta"],
                                      before.runs + spent["runs"])
    for dataset, runs in _per_run(entries).items():
        before = base.get(dataset, Spent(0.0, 0.0, 0))
        base[dataset] = Spent(before.epsilon + sum(e for e, _ in runs.values()),
                              before.delta + sum(d for _, d in runs.values()), before.runs + len(runs))
    return base


class PrivacyLedger:
    """Totals per dataset, read from the chain once, then kept up to date by :meth:`debit`."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self._lock = threading.Lock()
        # Only a chain that verifies against the node's key, its genesis and its last recorded head (kept in
        # audit-head.json, outside the file) is read: deleting old entries must not reset the budget.
        audit.adopt()
        self._entries = [e for e in audit.entries() if DEBIT in e.details or e.action == "audit.pruned"]

    def totals(self) -> dict[str, Spent]:
        with self._lock:
            return _totals(self._entries)

    def spent(self, dataset: str, *, excluding_run: str | None = None) -> float:
        """Epsilon spent on ``dataset`` by every run (but ``excluding_run``)."""
        with self._lock:
            total = _totals(self._entries).get(dataset, Spent(0.0, 0.0, 0)).epsilon
            if excluding_run is not None:
                total -= _per_run(self._entries).get(dataset, {}).get(excluding_run, (0.0, 0.0))[0]
            return total

    def releases(self, dataset: str, run: str) -> dict[str, int]:
        """How many releases of each task kind ``run`` has made on ``dataset`` (from the debits, not the desk)."""
        with self._lock:
            counts = dict.fromkeys(KINDS, 0)
            for entry in self._entries:
                d = entry.details.get(DEBIT)
                if d and d["dataset"] == dataset and d["run"] == run:
                    counts[d["kind"]] += 1
            return counts

    def note(self, entry: Entry) -> None:
        """Take into account an entry just appended to the chain (with its debit, if any)."""
        if DEBIT in entry.details:
            with self._lock:
                self._entries.append(entry)


def debit(*, dataset: str, project: str, run: str, kind: str, round_number: int, epsilon: float,
          run_epsilon: float, delta: float, mechanism: str) -> dict:
    """The ``privacy_debit`` details of one release; ``run_epsilon`` is what the run has spent with it."""
    return {"dataset": dataset, "project": project, "run": run, "kind": kind, "round": round_number,
            "mechanism": mechanism, "epsilon": epsilon, "run_epsilon": run_epsilon, "delta": delta}
