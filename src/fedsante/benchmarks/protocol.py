"""`fedsante bench protocol`: FedAvg round latency over loopback HTTP with real processes."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from fedsante.data.heart import HOSPITALS, load_hospital
from fedsante.federation.result import RunResult
from fedsante.algorithms.logreg.params import LogRegParams
from fedsante.sim.simulation import simulate_study
from fedsante.sim.launcher import Deployment
from fedsante.sim.lifecycle import example_spec, release_outputs

FLOWER_SECONDS_PER_ROUND = 12.4  # Flower 1.42 deployment, 4 nodes, loopback (shared/reference/flower.md)


async def _timed_run(deployment: Deployment, params: LogRegParams) -> dict:
    """An approved, accepted project (every governance check on at each round), run once."""
    spec = example_spec(list(deployment.hospitals)).model_copy(
        update={"parameters": params.model_dump(exclude_none=True), "parameter_bounds": {}})
    reference, cast = await deployment.approve(spec)
    try:
        run = await cast.holder.start_run(reference)
        await cast.holder.wait_run(run["id"])
        return await release_outputs(cast, run["id"])
    finally:
        await cast.close()


def measure(rounds: int, out_dir: Path) -> dict:
    """Median and p90 round seconds over real processes and in-process, in the same run."""
    params = LogRegParams(rounds=rounds)
    started = time.perf_counter()
    with Deployment(out_dir) as deployment:
        start_seconds = time.perf_counter() - started
        run = asyncio.run(_timed_run(deployment, params))
    tables = {h: load_hospital(h) for h in HOSPITALS}
    simulated = asyncio.run(simulate_study(tables, params.model_dump(exclude_none=True)))
    plain = asyncio.run(simulate_study(tables, params.model_dump(exclude_none=True), secure=False))
    out = {"rounds": rounds, "start_seconds": start_seconds}
    for name, record in (("http", run), ("in_process", simulated), ("in_process_plain", plain)):
        result = RunResult.model_validate(record["result"])
        seconds = sorted(result.round_seconds)
        out[name] = {"median": statistics.median(seconds), "p90": seconds[int(0.9 * (len(seconds) - 1))],
                     "max": seconds[-1], "setup": result.secure_setup_seconds}
    return out


def print_protocol(rounds: int, out_dir: Path, console) -> dict:
    with console.status(f"timing {rounds} rounds with 4 node processes"):
        figures = measure(rounds, out_dir)
    http, local = figures["http"], figures["in_process"]
    console.print(f"desk + 4 nodes started and registered in {figures['start_seconds']:.2f} s")
    console.print(f"secure aggregation set-up of all {rounds} rounds (keys and sealed shares, once per run): "
                  f"{http['setup'] * 1000:.0f} ms over HTTP, {local['setup'] * 1000:.0f} ms in-process")
    console.print(f"4-node FedAvg round over loopback HTTP: median {http['median'] * 1000:.1f} ms, "
                  f"p90 {http['p90'] * 1000:.1f} ms, max {http['max'] * 1000:.1f} ms ({rounds} rounds)")
    plain = figures["in_process_plain"]
    console.print(f"same round in-process (ASGI transport): median {local['median'] * 1000:.1f} ms with secure "
                  f"aggregation, {plain['median'] * 1000:.1f} ms plain (x{local['median'] / plain['median']:.2f})")
    console.print(f"Flower 1.42 reference: {FLOWER_SECONDS_PER_ROUND} s per round, i.e. "
                  f"{FLOWER_SECONDS_PER_ROUND / http['median']:.0f}x slower than fedsante over HTTP")
    return figures
