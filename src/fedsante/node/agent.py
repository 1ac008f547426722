"""The hospital agent: long-polls the desk (outbound only), runs catalogue tasks, posts signed results."""

from __future__ import annotations

import asyncio
import logging

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.data.heart import HospitalTable
from fedsante.errors import FedsanteError
from fedsante.federation.auth import sign_request
from fedsante.federation.catalogue import CATALOGUE
from fedsante.federation.keys import canonical_json, sign
from fedsante.federation.messages import Task, TaskResult, pack, unpack
from fedsante.node.executor import execute

log = logging.getLogger("fedsante.node")
TASKS_PATH = "/api/v1/node/tasks/next"
RESULTS_PATH = "/api/v1/node/results"


def check_algorithm(task: Task) -> str | None:
    """Why this node must refuse the task's algorithm, or None if its installed code matches."""
    algorithm = CATALOGUE.get(task.algorithm.id)
    if algorithm is None:
        return f"algorithm {task.algorithm.id!r} is not installed at this node (installed: {', '.join(sorted(CATALOGUE))})"
    installed = algorithm.ref()
    if task.algorithm.version != installed.version:
        return f"algorithm {task.algorithm.id!r} version {task.algorithm.version} differs from the installed {installed.version}"
    if task.algorithm.code_hash != installed.code_hash:
        return (f"algorithm {task.algorithm.id!r} code hash {task.algorithm.code_hash[:12]}... differs from "
                f"the installed code's {installed.code_hash[:12]}...")
    return None


class NodeAgent:
    """One node's loop. ``client`` is an ``httpx.AsyncClient`` whose base URL is the desk."""

    def __init__(self, *, node_id: str, table: HospitalTable, key: Ed25519PrivateKey,
                 client: httpx.AsyncClient, poll_seconds: float = 10.0) -> None:
        self.node_id = node_id
        self.table = table
        self.key = key
        self.client = client
        self.poll_seconds = poll_seconds

    def handle(self, task: Task) -> TaskResult:
        """Compute a task locally and return the signed result (a refusal is a result too)."""
        refusal = check_algorithm(task)
        arrays, metrics, error = {}, {}, refusal
        if refusal is None:
            try:
                out, metrics = execute(task.kind, dict(task.params), unpack(task.arrays), self.table,
                                       node_id=self.node_id, round_number=task.round)
                arrays = pack(out)
            except (FedsanteError, ValueError) as exc:
                error = str(exc)
        result = TaskResult(task_id=task.task_id, run_id=task.run_id, node_id=self.node_id,
                            ok=error is None, error=error, arrays=arrays, metrics=metrics)
        if error:
            log.warning("node %s refused task %s (%s): %s", self.node_id, task.task_id, task.kind, error)
        signature = sign(self.key, canonical_json(result.signed_content()))
        return result.model_copy(update={"signature": signature})

    async def poll_once(self) -> bool:
        """One long-poll; handles the task if one came. Returns True when a task was handled."""
        path = f"{TASKS_PATH}?wait={self.poll_seconds:g}"
        headers = sign_request(self.key, self.node_id, "GET", path, b"")
        response = await self.client.get(path, headers=headers, timeout=self.poll_seconds + 10)
        if response.status_code == 204:
            return False
        _raise_for_status(response)
        result = self.handle(Task.model_validate_json(response.content))
        body = result.model_dump_json().encode()
        headers = sign_request(self.key, self.node_id, "POST", RESULTS_PATH, body)
        headers["content-type"] = "application/json"
        _raise_for_status(await self.client.post(RESULTS_PATH, content=body, headers=headers))
        return True

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop`` is set; back off (up to 10 s) while the desk is unreachable."""
        stop = stop or asyncio.Event()
        delay = 0.5
        while not stop.is_set():
            try:
                await self.poll_once()
                delay = 0.5
            except (httpx.TransportError, FedsanteError) as exc:
                log.warning("node %s: desk at %s unreachable or refusing (%s); retrying in %.1f s",
                            self.node_id, self.client.base_url, _describe(exc), delay)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise FedsanteError(f"desk answered {response.status_code}: {message}")
