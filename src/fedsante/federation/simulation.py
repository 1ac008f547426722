"""Run a study in one process: the real desk app and real node agents over httpx's ASGI transport.

The protocol code path is the same as with separate processes over HTTP; only the transport differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.data.heart import HospitalTable
from fedsante.desk.app import create_app
from fedsante.desk.client import DeskClient
from fedsante.desk.settings import DeskSettings
from fedsante.federation.keys import public_key_b64
from fedsante.node.agent import NodeAgent

BASE_URL = "http://desk.invalid"


async def simulate_study(
    tables: dict[str, HospitalTable], params: dict, *,
    on_progress: Callable[[dict], None] | None = None, round_timeout: float = 30.0,
) -> dict:
    """Register one node per table at an in-memory desk, run the study, return the run record."""
    token = secrets.token_urlsafe(16)
    settings = DeskSettings(database_url="sqlite://", round_timeout_seconds=round_timeout)
    app = create_app(settings, admin_token=token)
    transport = httpx.ASGITransport(app=app)
    agents, loops = [], []
    async with DeskClient(BASE_URL, token, transport=transport) as desk:
        await desk.create_organisation("Simulation", kind="other")
        for node_id, table in tables.items():
            key = Ed25519PrivateKey.generate()
            await desk.register_node(node_id, "Simulation", public_key_b64(key))
            client = httpx.AsyncClient(base_url=BASE_URL, transport=transport)
            agents.append(NodeAgent(node_id=node_id, table=table, key=key, client=client, poll_seconds=5))
        loops = [asyncio.create_task(agent.run_forever()) for agent in agents]
        try:
            await desk.wait_for_nodes(list(tables), timeout=10)
            project = await desk.create_project("In-process simulation", "Simulation")
            run = await desk.start_run(project["id"], list(tables), params)
            return await desk.wait_run(run["id"], on_progress=on_progress, interval=0.01)
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            for agent in agents:
                await agent.client.aclose()
            await app.state.desk.runs.shutdown()
