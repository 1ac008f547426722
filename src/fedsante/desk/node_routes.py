"""Desk API for nodes: long-poll for tasks, post signed results, fetch approvals, report acceptances.

Every request is signed with the node's key; nodes hold no account token.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from sqlalchemy import select

from fedsante.common.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from fedsante.common.keys import canonical_json, verify
from fedsante.desk import limits
from fedsante.desk import projects as lifecycle
from fedsante.desk.db import Acceptance, Approval, Node, utcnow
from fedsante.desk.runs import record_audit_head, verify_result
from fedsante.desk.schemas import ERROR_RESPONSES
from fedsante.federation.approval import AcceptanceNotice
from fedsante.federation.auth import NODE_HEADER, verify_request
from fedsante.federation.messages import TaskResult

router = APIRouter(prefix="/api/v1/node", tags=["node protocol"], responses=ERROR_RESPONSES)


async def authenticate(request: Request) -> tuple[str, str, bytes]:
    """Return ``(node_id, public_key, body)`` of a correctly signed request from a registered node."""
    node_id = request.headers.get(NODE_HEADER, "")
    with request.app.state.desk.sessions() as session:
        node = session.get(Node, node_id)
        if node is None:
            raise Unauthorized(f"Node {node_id!r} is not registered at this desk. Register its public key first.")
        public_key = node.public_key
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    verify_request(public_key, dict(request.headers), request.method, path, body,
                   nonces=request.app.state.desk.nonces)
    return node_id, public_key, body


def parse_body(model, body: bytes):
    try:
        return model.model_validate_json(body)
    except ValueError as exc:
        raise BadRequest(f"Body is not a valid {model.__name__}: {exc}") from None


@router.get("/tasks/next", responses={204: {"description": "No task within the wait."}})
async def next_task(request: Request, wait: float = Query(10.0, ge=0)) -> Response:
    """Long-poll: the next task for the calling node, or 204 after ``wait`` seconds."""
    node_id, _, _ = await authenticate(request)
    desk = request.app.state.desk
    wait = min(wait, desk.settings.long_poll_max_seconds)
    task = await desk.broker.next_task(node_id, wait, request.is_disconnected)
    if task is None:
        return Response(status_code=204)
    return Response(content=task.model_dump_json(), media_type="application/json")


@router.post("/results", status_code=202)
async def post_result(request: Request) -> dict:
    """A node's signed result for a task it received."""
    node_id, public_key, body = await authenticate(request)
    desk = request.app.state.desk
    try:
        result = TaskResult.model_validate_json(body)
    except ValueError as exc:  # the request is the node's own (signed): fail its task now, with the reason
        reason = f"sent an invalid result ({_first_error(exc)})"
        desk.broker.reject(node_id, _task_id(body), reason)
        raise Unprocessable(f"Result refused: {reason}.") from None
    if result.node_id != node_id:
        raise Forbidden(f"Result names node {result.node_id!r} but the request is signed by {node_id!r}.")
    if not verify_result(public_key, result):
        raise Unauthorized(f"Result of task {result.task_id!r} does not carry a valid signature of node {node_id!r}.")
    drives = desk.runs.drives(result.run_id)
    desk.broker.deliver(node_id, result)  # 409/403 unless the task awaits this node's result: then nothing is kept
    if result.audit_head and not drives:
        record_audit_head(desk, node_id, result)  # a run's results are recorded with the task (one commit)
    if not result.ok:  # refusals are audited: bounded per node and minute (limits.py), as every worker counts
        limits.check(desk, f"refusal:{node_id}", desk.settings.node_refusals_per_minute,
                     f"Too many refusals from node {node_id!r}: at most {desk.settings.node_refusals_per_minute} "
                     "per minute. Wait a minute and post the refusal again.")
        desk.record(node_id, "task.refused", result.run_id, {"task_id": result.task_id, "reason": result.error})
    return {"ok": True}


def _task_id(body: bytes) -> object:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get("task_id") if isinstance(data, dict) else None


def _first_error(exc: ValueError) -> str:
    errors = exc.errors() if isinstance(exc, ValidationError) else []
    if errors:
        where = ".".join(str(part) for part in errors[0]["loc"])
        return f"{where}: {errors[0]['msg']}"[:300]
    return str(exc).splitlines()[0][:300]


@router.get("/approvals/{reference}")
async def node_approval(reference: str, request: Request) -> dict:
    """The current signed approval of a project, for the node's operator to verify and accept."""
    await authenticate(request)
    with request.app.state.desk.sessions() as session:
        approval = lifecycle.current_approval(session, lifecycle.get_project(session, reference))
        if approval is None:
            raise NotFound(f"Project {reference} has no approval yet.")
        return lifecycle.signed_approval(approval).model_dump(mode="json")


@router.post("/acceptances", status_code=201)
async def node_acceptance(request: Request) -> dict:
    """A node reports its operator's signed decision on an approval (the node's own list is authoritative)."""
    node_id, public_key, body = await authenticate(request)
    notice = parse_body(AcceptanceNotice, body)
    if notice.node_id != node_id or not verify(public_key, canonical_json(notice.signed_content()), notice.signature):
        raise Unauthorized(f"Acceptance notice is not signed by node {node_id!r}.")
    desk = request.app.state.desk
    with desk.sessions() as session:
        approval = session.get(Approval, notice.approval_id)
        if approval is None:
            raise NotFound(f"Approval {notice.approval_id} does not exist at this desk.")
        if approval.sha256 != notice.approval_sha256:
            raise Conflict(f"Node {node_id} decided on a different document than approval {approval.id}.")
        row = session.scalar(select(Acceptance).where(Acceptance.approval_id == approval.id,
                                                      Acceptance.node_id == node_id))
        if row is None:
            row = Acceptance(approval_id=approval.id, node_id=node_id, decision=notice.decision, signature="")
            session.add(row)
        row.decision, row.reason, row.signature = notice.decision, notice.reason, notice.signature
        row.decided_at = utcnow()
        session.commit()
    desk.record(node_id, f"approval.{notice.decision}", notice.approval_id, {"reason": notice.reason})
    return {"ok": True}
