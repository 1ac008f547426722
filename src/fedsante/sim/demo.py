"""`fedsante demo`: a desk and four hospital nodes as separate processes take one project through its life."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fedsante.sim.baselines import EXACT, evaluate, evaluation_scalers, fit_local, fit_pooled
from fedsante.sim import lifecycle
from fedsante.audit import Anchor, head_of, verify_anchored
from fedsante.audit.anchor import anchor_path
from fedsante.common.keys import load_key, public_key_b64
from fedsante.desk.keyring import Keyring
from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.sim.launcher import HOSPITAL_NAMES, Deployment
from fedsante.federation.result import RunResult
from fedsante.learning.scaling import Scaler
from fedsante.privacy.membership import dp_auc_ceiling
from fedsante.reports.render import write_report as write_trust_report
from fedsante.reports.study import write_report

async def _run_study(deployment: Deployment, params: LogRegParams, console: Console) -> tuple[dict, list[dict], dict]:
    """The whole life of the demo project: review, approval, acceptance at every node, run."""
    territories = {h: HOSPITAL_NAMES[h][1] for h in deployment.hospitals}
    spec = lifecycle.example_spec(list(deployment.hospitals), territories)
    spec = spec.model_copy(update={"parameters": params.model_dump(exclude_none=True), "parameter_bounds": {}})
    reference, cast = await deployment.approve(spec)
    try:
        approval = await cast.holder.project(reference, "approval")
        console.print(f"Project {reference} approved by {', '.join(approval['document']['reviewers'])}; "
                      f"approval signed with desk key {approval['document']['desk_key_id']}; "
                      f"accepted at {len(deployment.hospitals)} nodes.")
        run = await cast.holder.start_run(reference)
        columns = (TextColumn("[bold]federated rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("rounds", total=params.rounds)
            run = await cast.holder.wait_run(
                run["id"], on_progress=lambda r: progress.update(bar, completed=r["current_round"]))
        run = await lifecycle.release_outputs(cast, run["id"])
        console.print(f"Outputs of run {run['id']} released by two reviewers after the automatic checks.")
        trail = {"released_by": (await cast.holder.run_checks(run["id"]))["released_by"],
                 "reference": reference, "history": await cast.holder.project(reference, "history"),
                 "reviews": await cast.holder.project(reference, "reviews"), "approval": approval,
                 "acceptances": await cast.holder.project(reference, "acceptances"),
                 "heads": await cast.holder.audit_heads(), "trust": await cast.holder.trust_report(run["id"])}
        return run, await cast.holder.run_tasks(run["id"]), trail
    finally:
        await cast.close()


def trail_table(trail: dict, run: dict, out_dir: Path) -> Table:
    """Where each step of the project's life is recorded, and whether every audit chain verifies."""
    desk_dir, nodes_dir = out_dir / "desk", out_dir / "nodes"
    ref = trail["reference"]
    table = Table(title=f"Governance trail of {ref}", show_lines=False)
    for column in ("step", "who", "recorded in"):
        table.add_column(column)
    for event in trail["history"]:
        table.add_row(f"{event['from'] or 'created'} -> {event['to']}", event["actor"],
                      f"desk DB (GET /api/v1/projects/{ref}/history) + {desk_dir / 'audit.jsonl'}")
    for review in trail["reviews"]:
        table.add_row(f"review: {review['decision']}", review["reviewer"], f"GET /api/v1/projects/{ref}/reviews")
    doc = trail["approval"]["document"]
    table.add_row(f"approval {doc['approval_id']} signed", f"desk key {doc['desk_key_id']}",
                  f"GET /api/v1/projects/{ref}/approval (sha256 {trail['approval']['sha256'][:16]}...)")
    for acceptance in trail["acceptances"]:
        node = acceptance["node_id"]
        table.add_row(f"{acceptance['decision']} at {node}", f"data-officer@{node}",
                      f"{nodes_dir / node / 'acceptances.json'} + {nodes_dir / node / 'audit.jsonl'}")
    table.add_row(f"run {run['id']}: {run['status']}", run["started_by"],
                  f"GET /api/v1/runs/{run['id']}/tasks + each node's audit.jsonl")
    table.add_row(f"outputs of run {run['id']} released", ", ".join(trail["released_by"]),
                  f"GET /api/v1/runs/{run['id']}/checks + {desk_dir / 'audit.jsonl'}")
    chains = {"desk": (desk_dir / "audit.jsonl", trail["heads"]["desk"])}
    chains.update({n: (nodes_dir / n / "audit.jsonl", h) for n, h in trail["heads"]["nodes"].items()})
    for name, (path, head) in chains.items():
        check = _verify(path, desk_dir / "keys" if name == "desk" else nodes_dir / name / "node_key.pem")
        published = "is in the chain" if head_of(path, head["seq"], head["hash"]) else "is NOT in the chain"
        table.add_row(f"audit chain of {name}", "fedsante audit verify",
                      f"{check.summary()} Published head {str(head['hash'])[:12]}... {published}.")
    return table


def _verify(path: Path, keys: Path):
    """A chain checked against its writer's key (the desk's keys, or the node's) and its recorded head."""
    if keys.is_dir():
        public = [k.public_key for k in Keyring(keys.parent).keys()]
    else:
        public = [public_key_b64(load_key(keys))]
    lines = path.read_bytes().splitlines(keepends=True)
    return verify_anchored(lines, public, Anchor.load(anchor_path(path)))


def run_demo(out_dir: Path, params: LogRegParams, console: Console) -> dict:
    """Run the study across real processes, print the table, write results.json and report.html."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"Starting the desk and {len(HOSPITALS)} hospital nodes (logs in {out_dir / 'logs'}) ...")
    with Deployment(out_dir, tls=True) as deployment:
        console.print(f"Desk at {deployment.desk_url}; nodes: {', '.join(deployment.hospitals)}")
        run, tasks, trail = asyncio.run(_run_study(deployment, params, console))
    results = build_results(run, tasks, params, seconds=time.perf_counter() - started, desk_url=deployment.desk_url)
    results["governance"] = {"project": trail["reference"], "approval": trail["approval"],
                             "acceptances": trail["acceptances"], "audit_heads": trail["heads"]}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    written = write_trust_report(trail["trust"], out_dir)
    write_report(out_dir / "report.html", results)
    wide = Console(file=console.file, width=max(console.width, 120), force_terminal=console.is_terminal)
    wide.print(trail_table(trail, run, out_dir))
    wide.print(results_table(results))
    console.print(
        f"Run {run['id']} completed in {results['timing']['total_seconds']:.1f} s "
        f"(median round {results['timing']['median_round_seconds'] * 1000:.0f} ms). "
        f"Wrote {out_dir / 'results.json'} and {out_dir / 'report.html'}; trust report: "
        f"{', '.join(str(path) for path in written.values())}."
    )
    return results


def build_results(run: dict, tasks: list[dict], params: LogRegParams, *, seconds: float, desk_url: str) -> dict:
    """The study's results: DP metrics from the nodes, the released model scored, and comparison models."""
    tables = {h: load_hospital(h) for h in HOSPITALS}
    result = RunResult.model_validate(run["result"])
    released = {k: np.array(v) for k, v in result.model.items()}
    if result.scaler is None:
        raise ValueError(f"Run {run['id']} has no global standardisation; the demo runs with scaling 'global'.")
    scaler = Scaler(mean=np.array(result.scaler.mean), scale=np.array(result.scaler.scale))
    models = {"federated": evaluate(released, tables, evaluation_scalers(tables, scaler, "global")),
              "federated, DP at nodes": result.node_metrics}
    for name, table in tables.items():
        local = fit_local(table, EXACT, seed=params.seed)
        models[f"local {name}"] = evaluate(local.params, tables, evaluation_scalers(tables, local, "global"))
    pooled = fit_pooled(tables, EXACT, seed=params.seed)
    models["pooled"] = evaluate(pooled.params, tables, evaluation_scalers(tables, pooled, "global"))
    return {
        "study": "Fed-Heart-Disease: heart disease diagnosis, 4 hospitals (UCI, CC BY 4.0)",
        "run": {k: run[k] for k in ("id", "status", "algorithm_id", "algorithm_version", "code_hash", "params", "nodes")},
        "desk_url": desk_url,
        "hospitals": {h: {"n_test": len(t.part("test")[1]), "n_train": len(t.part("train")[1])} for h, t in tables.items()},
        "models": models,
        "mean_accuracy": {m: statistics.fmean(v["accuracy"] for v in per.values()) for m, per in models.items()},
        "signed_results": sum(1 for t in tasks if t["signature"]),
        "timing": {"total_seconds": seconds, "round_seconds": result.round_seconds,
                   "median_round_seconds": statistics.median(result.round_seconds)},
        "privacy": run.get("privacy"),
        "membership": membership(run, result),
        "notes": ("'federated, DP at nodes' was computed by each node on its own test rows, with Gaussian noise "
                  "(differential privacy) and disclosure control: an AUC is withheld where one outcome class has "
                  "fewer than k_min = 11 test patients. 'federated' scores the released model, and the local and "
                  "pooled rows are models trained without DP, all centralised comparisons computed from the "
                  "bundled public data, which a real deployment cannot do."),
    }


def membership(run: dict, result: RunResult) -> dict:
    """Each hospital's noisy membership-attack AUC and the ceiling the run's DP guarantee puts on any attack."""
    privacy = run.get("privacy") or {}
    ceiling = dp_auc_ceiling(privacy["epsilon"], privacy["delta"]) if privacy.get("epsilon") is not None else None
    return {"ceiling": ceiling, "hospitals": {
        h: {"auc": result.metric(h, "membership_auc"), "noise_sd": result.metric(h, "membership_noise_sd")}
        for h in result.node_metrics}}


def results_table(results: dict) -> Table:
    table = Table(title="Test accuracy / AUC per hospital",
                  caption="DP at nodes: noisy counts computed at each node (AUC n/a: a class under k_min = 11); "
                          "federated (released model), local and pooled: centralised comparisons on the public data")
    table.add_column("model", no_wrap=True)
    for hospital, info in results["hospitals"].items():
        table.add_column(f"{hospital}\nn={info['n_test']}", justify="right", no_wrap=True)
    table.add_column("mean acc", justify="right")
    for model, per in results["models"].items():
        cells = [f"{per[h]['accuracy']:.3f} / {_fmt(per[h]['auc'])}" for h in results["hospitals"]]
        style = "bold green" if model.startswith("federated") else None
        table.add_row(model, *cells, f"{results['mean_accuracy'][model]:.3f}", style=style)
    return table


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
