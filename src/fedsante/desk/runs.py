"""Starting runs at the desk and recording what happens to them."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from fedsante.data.heart import FEATURES
from fedsante.desk.db import Node, Project, Run, TaskRecord, utcnow
from fedsante.errors import BadRequest, FedsanteError, NotFound
from fedsante.federation.broker import Broker
from fedsante.federation.catalogue import get_algorithm
from fedsante.federation.coordinator import RunOutcome, RunPlan, run_study
from fedsante.federation.keys import canonical_json, sha256_hex, verify
from fedsante.federation.messages import Task, TaskResult
from fedsante.federation.params import LogRegParams

log = logging.getLogger("fedsante.desk")


class RunService:
    """Creates runs, drives each one in a background task, persists progress and outcome."""

    def __init__(self, sessions: sessionmaker, broker: Broker, *, round_timeout: float) -> None:
        self.sessions = sessions
        self.broker = broker
        self.round_timeout = round_timeout
        self._tasks: dict[str, asyncio.Task] = {}

    def start(self, project_id: int, nodes: list[str], algorithm_id: str, params: LogRegParams) -> Run:
        algorithm = get_algorithm(algorithm_id)
        if not nodes:
            raise BadRequest("A run needs at least one node. Pass 'nodes': [\"node-id\", ...].")
        if len(set(nodes)) != len(nodes):
            raise BadRequest(f"Run nodes must be distinct; got {nodes}.")
        with self.sessions() as session:
            if session.get(Project, project_id) is None:
                raise NotFound(f"Project {project_id} does not exist. Create it with POST /api/v1/projects.")
            known = set(session.scalars(select(Node.id).where(Node.id.in_(nodes))))
            unknown = [n for n in nodes if n not in known]
            if unknown:
                raise NotFound(f"Node(s) {', '.join(unknown)} are not registered at this desk. Register with POST /api/v1/nodes.")
            ref = algorithm.ref()
            run = Run(id=uuid.uuid4().hex[:12], project_id=project_id, algorithm_id=ref.id,
                      algorithm_version=ref.version, code_hash=ref.code_hash, params=params.model_dump(),
                      nodes=list(nodes), rounds=params.rounds)
            session.add(run)
            session.commit()
        plan = RunPlan(run_id=run.id, nodes=tuple(nodes), algorithm=ref, params=params,
                       n_features=len(FEATURES), round_timeout=self.round_timeout)
        self._tasks[run.id] = asyncio.get_running_loop().create_task(self._drive(plan))
        return run

    async def _drive(self, plan: RunPlan) -> None:
        try:
            outcome = await run_study(plan, self.broker, lambda kind, **data: self._on_event(plan, kind, data))
        except FedsanteError as exc:
            self._finish(plan.run_id, "failed", error=exc.message)
        except asyncio.CancelledError:
            self._finish(plan.run_id, "failed", error="The desk stopped during the run.")
            raise
        else:
            self._finish(plan.run_id, "completed", result=_serialise(outcome))
        finally:
            self._tasks.pop(plan.run_id, None)

    def _on_event(self, plan: RunPlan, kind: str, data: dict) -> None:
        with self.sessions() as session:
            if kind == "round":
                session.get(Run, plan.run_id).current_round = data["round"]
            elif kind == "result":
                task: Task = data["task"]
                result: TaskResult = data["result"]
                session.add(TaskRecord(
                    id=task.task_id, run_id=plan.run_id, node_id=data["node"], round=task.round,
                    kind=task.kind, ok=result.ok, error=result.error, rejected=data["rejected"],
                    result_sha256=sha256_hex(canonical_json(result.signed_content())),
                    signature=result.signature,
                ))
                if data["rejected"]:
                    log.warning("run %s: rejected reply of node %s: %s", plan.run_id, data["node"], data["rejected"])
            session.commit()

    def _finish(self, run_id: str, status: str, *, error: str | None = None, result: dict | None = None) -> None:
        with self.sessions() as session:
            run = session.get(Run, run_id)
            run.status, run.error, run.result, run.finished_at = status, error, result, utcnow()
            session.commit()
        log.info("run %s %s%s", run_id, status, f": {error}" if error else "")

    async def shutdown(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)


def verify_result(public_key: str, result: TaskResult) -> bool:
    return verify(public_key, canonical_json(result.signed_content()), result.signature)


def _serialise(outcome: RunOutcome) -> dict:
    return {
        "model": {k: v.tolist() for k, v in outcome.params.items()},
        "scaler": None if outcome.scaler is None else {
            "mean": outcome.scaler.mean.tolist(), "scale": outcome.scaler.scale.tolist()},
        "features": list(FEATURES),
        "node_metrics": outcome.node_metrics,
        "round_seconds": outcome.round_seconds,
    }
