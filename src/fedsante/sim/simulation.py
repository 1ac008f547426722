"""Run a study in one process: the real desk app and real node agents over httpx's ASGI transport.

The protocol code path is the same as with separate processes over HTTP; only the transport differs.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from fedsante.common.keys import load_key
from fedsante.algorithms.catalogue import get_algorithm
from fedsante.data.cohort import Cohort
from fedsante.data.study import StudySchema
from fedsante.desk.client import DeskClient
from fedsante.desk.settings import DeskSettings
from fedsante.node import operator
from fedsante.node.agent import NodeAgent
from fedsante.node.config import NodeConfig
from fedsante.node.operator import init_node
from fedsante.portal.app import create_app
from fedsante.reports.carbon import ComputeMeter
from fedsante.sim import lifecycle

BASE_URL = "http://127.0.0.1"  # in-process (ASGI transport): no network, so no TLS


@dataclass(frozen=True)
class Options:
    """How a simulated study is set up (see :func:`simulate_study`)."""

    round_timeout: float = 30.0
    secure: bool = True
    epsilon: float | None = None
    algorithm: str = "logreg"
    study: StudySchema | None = None


async def simulate_study(
    tables: dict[str, Cohort], params: dict, *,
    on_progress: Callable[[dict], None] | None = None, round_timeout: float = 30.0,
    work_dir: Path | None = None, secure: bool = True, epsilon: float | None = None, energy: bool = False,
    algorithm: str = "logreg", study: StudySchema | None = None,
) -> dict:
    """Approve a project over one node per table at an in-memory desk, run it, return the run record.

    The project goes through the same governance as in a deployment (accounts, charter checks, two
    reviews, signed approval, acceptance at every node); keys, policies and audit chains are written
    under ``work_dir`` (a temporary folder by default). ``secure=False`` runs plain FedAvg rounds, and
    ``params["privacy"] = "none"`` exact ones without differential privacy (each relaxes the desk's
    settings and the simulated nodes' policies accordingly), for benchmarks that compare them.
    ``epsilon`` replaces the example project's privacy budget (1.0). ``energy=True`` measures every
    computation with one CodeCarbon meter shared by the simulated nodes (about 2 s to start).
    ``algorithm`` names any registered catalogue entry and ``study`` the study schema the approval signs
    (default: the example project's, the bundled heart study); ``tables`` are cohorts compiled for it.
    """
    options = Options(round_timeout=round_timeout, secure=secure, epsilon=epsilon, algorithm=algorithm, study=study)
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fedsante-sim-")))
        meter = stack.enter_context(ComputeMeter()) if energy else None
        return await _simulate(tables, params, on_progress, options, Path(work_dir), meter)


async def _simulate(tables: dict[str, Cohort], params: dict, on_progress, options: Options,
                    work_dir: Path, meter: ComputeMeter | None) -> dict:
    token = secrets.token_urlsafe(16)
    exact = not get_algorithm(options.algorithm).parameters(params).dp
    secure = options.secure
    settings = DeskSettings(data_dir=work_dir / "desk", round_timeout_seconds=options.round_timeout,
                            secure_aggregation=secure, allow_exact_runs=exact)  # SQLite file: one connection per thread
    app = create_app(settings, admin_token=token)
    transport = httpx.ASGITransport(app=app)
    agents, loops, cast = [], [], None
    async with DeskClient(BASE_URL, token, transport=transport) as desk:
        try:
            await desk.create_organisation("Simulation", kind="hospital")
            configs = []
            for node_id, table in tables.items():
                cfg = NodeConfig(node_id=node_id, desk_url=BASE_URL, data_dir=work_dir / "nodes" / node_id,
                                 dataset=node_id)
                public_key = init_node(cfg)
                await desk.register_node(node_id, "Simulation", public_key)
                await lifecycle.prepare_node(cfg, await desk.keys())
                if not secure:  # only for comparisons: each operator would have to allow plain updates
                    operator.update_policy(cfg, "secure-aggregation", required=False)
                if exact:
                    operator.update_policy(cfg, "differential-privacy", required=False)
                client = httpx.AsyncClient(base_url=BASE_URL, transport=transport)
                agents.append(NodeAgent(node_id=node_id, table=table, key=load_key(cfg.key_path), client=client,
                                        guard=operator.guard(cfg), poll_seconds=5, meter=meter))
                configs.append(cfg)
            spec = lifecycle.example_spec(list(tables))
            spec = spec.model_copy(update={
                "parameters": params, "parameter_bounds": {}, "algorithm": options.algorithm,
                "study": options.study or spec.study,
                "epsilon": spec.epsilon if options.epsilon is None else options.epsilon})
            cast = await lifecycle.create_cast(desk)
            project = await lifecycle.submit_and_approve(cast, spec)
            await lifecycle.accept_everywhere(configs, project["reference"], transport=transport)
            loops = [asyncio.create_task(agent.run_forever()) for agent in agents]
            await desk.wait_for_nodes(list(tables), timeout=10)
            run = await cast.holder.start_run(project["reference"], list(tables))
            return await desk.wait_run(run["id"], on_progress=on_progress, interval=0.01)
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            for agent in agents:
                await agent.client.aclose()
            if cast is not None:
                await cast.close()
            await app.state.desk.runs.shutdown()
