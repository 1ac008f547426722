"""The desk's side of the long-poll: per-node task queues and pending results, in memory.

Nodes connect outbound only. A node's ``GET next task`` waits here until a task is queued for it
or the poll times out; its ``POST result`` resolves the future the coordinator awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fedsante.common.errors import Conflict, Forbidden, InvalidReply
from fedsante.federation.messages import Task, TaskResult


@dataclass
class _Pending:
    node_id: str
    future: asyncio.Future
    delivered_at: float | None = None


@dataclass
class Broker:
    """In-memory queues. ``grace`` is how long after its last poll a node still counts as connected."""

    grace: float = 2.0
    _queues: dict[str, deque[Task]] = field(default_factory=lambda: defaultdict(deque))
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _polling: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _last_seen: dict[str, float] = field(default_factory=dict)
    _wakeup: dict[str, asyncio.Event] = field(default_factory=dict)

    def connected(self, node_id: str) -> bool:
        """True if the node is polling now or polled within the last ``grace`` seconds."""
        if self._polling[node_id] > 0:
            return True
        last = self._last_seen.get(node_id)
        return last is not None and time.monotonic() - last <= self.grace

    def last_seen(self, node_id: str) -> float | None:
        """Seconds since the node's last poll, or None if it never polled."""
        last = self._last_seen.get(node_id)
        return None if last is None else time.monotonic() - last

    def submit(self, node_id: str, task: Task) -> asyncio.Future:
        """Queue ``task`` for ``node_id``; the returned future resolves with its TaskResult."""
        future = asyncio.get_running_loop().create_future()
        self._pending[task.task_id] = _Pending(node_id=node_id, future=future)
        self._queues[node_id].append(task)
        self._event(node_id).set()
        return future

    def cancel(self, task_ids: list[str]) -> None:
        """Forget tasks whose run gave up on them (queued ones are dropped too)."""
        for task_id in task_ids:
            pending = self._pending.pop(task_id, None)
            if pending is not None:
                queue = self._queues[pending.node_id]
                self._queues[pending.node_id] = deque(t for t in queue if t.task_id != task_id)
                if not pending.future.done():
                    pending.future.cancel()

    async def next_task(self, node_id: str, wait: float, disconnected: Callable[[], Awaitable[bool]]) -> Task | None:
        """Wait up to ``wait`` seconds for a task for ``node_id``; None if none came."""
        self._polling[node_id] += 1
        try:
            deadline = time.monotonic() + wait
            while True:
                self._last_seen[node_id] = time.monotonic()
                event = self._event(node_id)
                event.clear()  # before looking at the queue, so no submit can be missed
                queue = self._queues[node_id]
                if queue:
                    task = queue.popleft()
                    self._pending[task.task_id].delivered_at = time.monotonic()
                    return task
                remaining = deadline - time.monotonic()
                if remaining <= 0 or await disconnected():
                    return None
                try:
                    await asyncio.wait_for(event.wait(), timeout=min(remaining, 0.5))
                except TimeoutError:
                    pass
        finally:
            self._polling[node_id] -= 1
            self._last_seen[node_id] = time.monotonic()

    def deliver(self, node_id: str, result: TaskResult) -> None:
        """Hand a node's (already authenticated) result to whoever awaits it."""
        pending = self._pending.get(result.task_id)
        if pending is None:
            raise Conflict(f"Task {result.task_id!r} is not awaiting a result (unknown, finished or cancelled).")
        if pending.node_id != node_id:
            raise Forbidden(f"Task {result.task_id!r} was not assigned to node {node_id!r}.")
        del self._pending[result.task_id]
        if not pending.future.done():
            pending.future.set_result(result)

    def reject(self, node_id: str, task_id: object, reason: str) -> bool:
        """Fail the task a node answered with an invalid result, so that its run stops with the reason at once
        instead of waiting for a reply that will never come. Returns whether a pending task was failed."""
        pending = self._pending.get(task_id) if isinstance(task_id, str) else None
        if pending is None or pending.node_id != node_id:
            return False
        del self._pending[task_id]
        if not pending.future.done():
            pending.future.set_exception(InvalidReply(reason))
        return True

    def _event(self, node_id: str) -> asyncio.Event:
        if node_id not in self._wakeup:
            self._wakeup[node_id] = asyncio.Event()
        return self._wakeup[node_id]
