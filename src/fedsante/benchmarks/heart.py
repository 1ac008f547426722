"""`fedsante bench heart`: pooled, local-only and federated accuracy next to FLamby's numbers.

Two protocols:

* ``flamby``: FLamby's exact protocol; every hospital's rows are standardised with that hospital's
  own training statistics (also for the pooled model's test sets), nodes use 'local' scaling.
* ``fedsante``: fedsante's default; standardisation uses federated global means and variances.
"""

from __future__ import annotations

import asyncio
import csv
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from fedsante.sim.baselines import EXACT, evaluate, evaluation_scalers, fit_local, fit_pooled
from fedsante.data.cohort import Cohort
from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.federation.result import RunResult
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.sim.simulation import simulate_study

PROTOCOLS = {"flamby": "local", "fedsante": "global"}
"""Without differential privacy (the comparison with FLamby's non-DP results): SGD settings tuned for it."""
FLAMBY_METHODS = {"pooled": "Pooled Training", "federated (FedAvg)": "FedAvg100",
                  **{f"local {h}": f"Local {i}" for i, h in enumerate(HOSPITALS)}}


@dataclass(frozen=True)
class Row:
    protocol: str
    method: str
    per_seed: tuple[float, ...]  # mean accuracy over the 4 hospital test sets, one per seed
    per_hospital: dict[str, float]  # accuracy per hospital, mean over seeds

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_seed)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.per_seed) if len(self.per_seed) > 1 else 0.0


def flamby_reference() -> dict[str, tuple[float, float]]:
    """FLamby's mean-over-centres accuracy (mean, sd over seeds) per method, from its result CSVs."""
    per_seed: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    folder = resources.files("fedsante.benchmarks") / "flamby_results"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".csv"):
            continue
        with entry.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row["Test"] != "Pooled Test":
                    per_seed[row["Method"]][row["seed"]].append(float(row["Metric"]))
    out = {}
    for method, seeds in per_seed.items():
        means = [statistics.fmean(v) for v in seeds.values()]
        out[method] = (statistics.fmean(means), statistics.stdev(means) if len(means) > 1 else 0.0)
    return out


def run_heart(seeds: list[int], params: LogRegParams = EXACT,
              on_step: Callable[[str], None] | None = None) -> list[Row]:
    """Every (protocol, method) row over ``seeds``; federated runs use the real protocol in-process."""
    tables = {h: load_hospital(h) for h in HOSPITALS}
    results: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for protocol, scaling in PROTOCOLS.items():
        for seed in seeds:
            if on_step:
                on_step(f"{protocol} seed {seed}")
            run_params = params.model_copy(update={"scaling": scaling, "seed": seed})
            for method, accuracies in _one_seed(tables, run_params).items():
                results[(protocol, method)].append(accuracies)
    rows = []
    for (protocol, method), per_seed in results.items():
        rows.append(Row(
            protocol=protocol, method=method,
            per_seed=tuple(statistics.fmean(acc.values()) for acc in per_seed),
            per_hospital={h: statistics.fmean(acc[h] for acc in per_seed) for h in HOSPITALS},
        ))
    return rows


def _one_seed(tables: dict[str, Cohort], params: LogRegParams) -> dict[str, dict[str, float]]:
    def accuracies(metrics: dict[str, dict]) -> dict[str, float]:
        return {h: m["accuracy"] for h, m in metrics.items()}

    pooled = fit_pooled(tables, params, seed=params.seed)
    out = {"pooled": accuracies(evaluate(pooled.params, tables, evaluation_scalers(tables, pooled, params.scaling)))}
    for name, table in tables.items():
        local = fit_local(table, params, seed=params.seed)
        out[f"local {name}"] = accuracies(evaluate(local.params, tables, evaluation_scalers(tables, local, params.scaling)))
    run = asyncio.run(simulate_study(tables, params.model_dump(exclude_none=True)))
    out["federated (FedAvg)"] = accuracies(RunResult.model_validate(run["result"]).node_metrics)
    return out



TARGETS = {"flamby": 0.735, "fedsante": 0.80}


def print_heart(seeds: list[int], console) -> list[Row]:
    """Run the benchmark and print one table per protocol, with FLamby's reference numbers."""
    from rich.table import Table

    with console.status("benchmark") as status:
        rows = run_heart(seeds, on_step=lambda step: status.update(f"bench heart: {step}"))
    reference = flamby_reference()
    for protocol, scaling in PROTOCOLS.items():
        title = (f"Fed-Heart-Disease, protocol '{protocol}' ({scaling} standardisation), "
                 f"mean accuracy over the 4 hospital test sets, seeds {' '.join(map(str, seeds))}")
        table = Table(title=title)
        for column in ("method", "fedsante", *HOSPITALS, "FLamby"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for row in (r for r in rows if r.protocol == protocol):
            ref = reference.get(FLAMBY_METHODS[row.method])
            table.add_row(row.method, f"{row.mean:.3f} ± {row.sd:.3f}",
                          *(f"{row.per_hospital[h]:.3f}" for h in HOSPITALS),
                          "" if ref is None else f"{ref[0]:.3f} ± {ref[1]:.3f}")
        console.print(table)
        federated = next(r for r in rows if r.protocol == protocol and r.method.startswith("federated"))
        verdict = "meets" if federated.mean >= TARGETS[protocol] else "MISSES"
        console.print(f"federated {federated.mean:.3f} {verdict} the target >= {TARGETS[protocol]:.3f}\n")
    return rows
