"""`fedsante demo`: a desk and four hospital nodes as separate processes run one federated study."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedsante.benchmarks.baselines import evaluate, evaluation_scalers, fit_local, fit_pooled
from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.federation.params import LogRegParams
from fedsante.launcher import Deployment
from fedsante.reports.study import write_report

DEMO_TEAM = "Demo research team"


async def _run_study(deployment: Deployment, params: LogRegParams, console: Console) -> tuple[dict, list[dict]]:
    async with deployment.client() as desk:
        await desk.create_organisation(DEMO_TEAM, kind="research")
        project = await desk.create_project("Heart disease risk across four hospitals (demo)", DEMO_TEAM)
        run = await desk.start_run(project["id"], list(deployment.hospitals), params.model_dump())
        columns = (TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("rounds", total=params.rounds)
            run = await desk.wait_run(run["id"], on_progress=lambda r: progress.update(bar, completed=r["current_round"]))
        return run, await desk.run_tasks(run["id"])


def run_demo(out_dir: Path, params: LogRegParams, console: Console) -> dict:
    """Run the study across real processes, print the table, write results.json and report.html."""
    started = time.perf_counter()
    for previous in ("desk", "nodes", "logs"):  # each demo starts from a fresh desk and fresh nodes
        shutil.rmtree(out_dir / previous, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"Starting the desk and {len(HOSPITALS)} hospital nodes (logs in {out_dir / 'logs'}) ...")
    with Deployment(out_dir) as deployment:
        console.print(f"Desk at {deployment.desk_url}; nodes: {', '.join(deployment.hospitals)}")
        run, tasks = asyncio.run(_run_study(deployment, params, console))
    results = build_results(run, tasks, params, seconds=time.perf_counter() - started, desk_url=deployment.desk_url)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    write_report(out_dir / "report.html", results)
    wide = Console(file=console.file, width=max(console.width, 100), force_terminal=console.is_terminal)
    wide.print(results_table(results))
    console.print(
        f"Run {run['id']} completed in {results['timing']['total_seconds']:.1f} s "
        f"(median round {results['timing']['median_round_seconds'] * 1000:.0f} ms). "
        f"Wrote {out_dir / 'results.json'} and {out_dir / 'report.html'}."
    )
    return results


def build_results(run: dict, tasks: list[dict], params: LogRegParams, *, seconds: float, desk_url: str) -> dict:
    """The study's results: federated metrics from the nodes, plus centralised comparison models."""
    tables = {h: load_hospital(h) for h in HOSPITALS}
    models = {"federated": run["result"]["node_metrics"]}
    for name, table in tables.items():
        local = fit_local(table, params, seed=params.seed)
        models[f"local {name}"] = evaluate(local.params, tables, evaluation_scalers(tables, local, "global"))
    pooled = fit_pooled(tables, params, seed=params.seed)
    models["pooled"] = evaluate(pooled.params, tables, evaluation_scalers(tables, pooled, "global"))
    return {
        "study": "Fed-Heart-Disease: heart disease diagnosis, 4 hospitals (UCI, CC BY 4.0)",
        "run": {k: run[k] for k in ("id", "status", "algorithm_id", "algorithm_version", "code_hash", "params", "nodes")},
        "desk_url": desk_url,
        "hospitals": {h: {"n_test": len(t.part("test")[1]), "n_train": len(t.part("train")[1])} for h, t in tables.items()},
        "models": models,
        "mean_accuracy": {m: statistics.fmean(v["accuracy"] for v in per.values()) for m, per in models.items()},
        "signed_results": sum(1 for t in tasks if t["signature"]),
        "timing": {"total_seconds": seconds, "round_seconds": run["result"]["round_seconds"],
                   "median_round_seconds": statistics.median(run["result"]["round_seconds"])},
        "notes": ("Federated rows were computed by the nodes on their own test rows. Local and pooled rows are "
                  "centralised comparisons computed from the bundled public data, which a real deployment "
                  "cannot do."),
    }


def results_table(results: dict) -> Table:
    table = Table(title="Test accuracy / AUC per hospital (federated: computed at each node)",
                  caption="local and pooled: centralised comparisons on the public data")
    table.add_column("model", no_wrap=True)
    for hospital, info in results["hospitals"].items():
        table.add_column(f"{hospital}\nn={info['n_test']}", justify="right", no_wrap=True)
    table.add_column("mean acc", justify="right")
    for model, per in results["models"].items():
        cells = [f"{per[h]['accuracy']:.3f} / {_fmt(per[h]['auc'])}" for h in results["hospitals"]]
        style = "bold green" if model == "federated" else None
        table.add_row(model, *cells, f"{results['mean_accuracy'][model]:.3f}", style=style)
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
