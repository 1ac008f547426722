"""Desk API for nodes: long-poll for tasks, post signed results. Every request is signed."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from fedsante.desk.db import Node
from fedsante.desk.runs import verify_result
from fedsante.errors import BadRequest, Forbidden, Unauthorized
from fedsante.federation.auth import NODE_HEADER, verify_request
from fedsante.federation.messages import TaskResult

router = APIRouter(prefix="/api/v1/node", tags=["node protocol"])


async def _authenticate(request: Request) -> tuple[str, str, bytes]:
    """Return ``(node_id, public_key, body)`` of a correctly signed request from a registered node."""
    node_id = request.headers.get(NODE_HEADER, "")
    with request.app.state.desk.sessions() as session:
        node = session.get(Node, node_id)
        if node is None:
            raise Unauthorized(f"Node {node_id!r} is not registered at this desk. Register its public key first.")
        public_key = node.public_key
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    verify_request(public_key, dict(request.headers), request.method, path, body)
    return node_id, public_key, body


@router.get("/tasks/next", responses={204: {"description": "No task within the wait."}})
async def next_task(request: Request, wait: float = Query(10.0, ge=0)) -> Response:
    """Long-poll: the next task for the calling node, or 204 after ``wait`` seconds."""
    node_id, _, _ = await _authenticate(request)
    desk = request.app.state.desk
    wait = min(wait, desk.settings.long_poll_max_seconds)
    task = await desk.broker.next_task(node_id, wait, request.is_disconnected)
    if task is None:
        return Response(status_code=204)
    return Response(content=task.model_dump_json(), media_type="application/json")


@router.post("/results", status_code=202)
async def post_result(request: Request) -> dict:
    """A node's signed result for a task it received."""
    node_id, public_key, body = await _authenticate(request)
    try:
        result = TaskResult.model_validate_json(body)
    except ValueError as exc:
        raise BadRequest(f"Result body is not a valid TaskResult: {exc}") from None
    if result.node_id != node_id:
        raise Forbidden(f"Result names node {result.node_id!r} but the request is signed by {node_id!r}.")
    if not verify_result(public_key, result):
        raise Unauthorized(f"Result of task {result.task_id!r} does not carry a valid signature of node {node_id!r}.")
    request.app.state.desk.broker.deliver(node_id, result)
    return {"ok": True}
