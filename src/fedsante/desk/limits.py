"""Abuse limits of the desk: request bodies bounded while they stream, rate limits shared by every worker.

:class:`BodyLimit` is a pure ASGI middleware: it refuses a request whose Content-Length is above the
limit before the application runs, and counts the bytes of the ``http.request`` messages of the others,
refusing (413, the desk's JSON error shape) as soon as the count passes the limit; nothing larger than
the limit plus one chunk is ever held. :func:`allow` counts actions per key and one-minute window in
the desk's database (table ``rate_limits``), so that every worker process shares the same counts.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from fedsante.common.errors import TooManyRequests
from fedsante.common.keys import sha256_hex
from fedsante.desk.db import RateCounter

NODE_PREFIX = "/api/v1/node/"


class BodyTooLarge(HTTPException):
    """Raised while reading a body past the limit; rendered 413 by the desk's handler (or the middleware)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body too large: at most {limit:,} bytes are accepted here.")
        self.limit = limit


def too_large_body(limit: int) -> dict:
    message = f"Request body too large: at most {limit:,} bytes are accepted here."
    return {"ok": False, "error": message, "errors": [message], "status": 413}


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes (``node_limit`` under /api/v1/node/: signed results)."""

    def __init__(self, app, limit: int, node_limit: int) -> None:
        self.app, self.limit, self.node_limit = app, limit, node_limit

    def limit_for(self, path: str) -> int:
        return self.node_limit if path.startswith(NODE_PREFIX) else self.limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > limit):
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            if not started:
                await _refuse(send, limit)


async def _refuse(send, limit: int) -> None:
    body = json.dumps(too_large_body(limit)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


WINDOW_SECONDS = 60


def client_key(kind: str, client: str) -> str:
    """The key of a client address: hashed, so that the table holds no address in clear."""
    return f"{kind}:{sha256_hex(client.encode())[:40]}"


def allow(desk, key: str, limit: int, *, now: float | None = None, seconds: int = WINDOW_SECONDS) -> bool:
    """Count one action of ``key`` in the current window; False (not counted) if it already took ``limit``.

    Each step is one atomic statement, so concurrent workers never let more than ``limit`` through.
    """
    now = time.time() if now is None else now
    window = int(now // seconds) * seconds
    engine = desk.sessions.kw["bind"]
    table = RateCounter.__table__
    for _ in range(2):
        with engine.begin() as connection:
            same = connection.execute(update(table).where(
                table.c.key == key, table.c.window_start == window, table.c.count < limit)
                .values(count=table.c.count + 1))
            if same.rowcount:
                return True
            renewed = connection.execute(update(table).where(table.c.key == key, table.c.window_start < window)
                                         .values(window_start=window, count=1))
            if renewed.rowcount:
                return True
        try:
            with engine.begin() as connection:
                if limit < 1:
                    return False
                connection.execute(insert(table).values(key=key, window_start=window, count=1))
                connection.execute(delete(table).where(table.c.window_start < window - 3600))  # idle keys
                return True
        except IntegrityError:  # the key exists: full in this window, or another worker just created it
            continue
    return False


def check(desk, key: str, limit: int, message: str) -> None:
    """Raise TooManyRequests (429) with ``message`` unless ``key`` may act once more this minute."""
    if not allow(desk, key, limit):
        raise TooManyRequests(message)
