"""Security headers on every response of the desk (portal pages, JSON twins, API, errors).

The portal runs no script; its pages and the trust report carry ``<style>`` blocks and the inline SVG
figures ``style`` attributes, hence ``style-src 'unsafe-inline'`` (styles cannot run code), never
``script-src 'unsafe-inline'``. The API's own documentation pages (/docs, /redoc) load Swagger UI and
ReDoc from their CDN with one inline script each: those pages allow that CDN and the hash of their
inline scripts, nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import re

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
DOCS_PATHS = ("/docs", "/redoc")
CDN = "https://cdn.jsdelivr.net"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def docs_csp(body: bytes) -> str:
    """The policy of an API documentation page: its CDN and the hashes of the page's own inline scripts."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s).digest()).decode() + "'"
                      for s in INLINE_SCRIPT.findall(body))
    return (f"default-src 'self'; script-src 'self' {CDN} {hashes}; style-src 'self' 'unsafe-inline' {CDN} "
            "https://fonts.googleapis.com; font-src 'self' https://fonts.gstatic.com; "
            "img-src 'self' data: https://fastapi.tiangolo.com; worker-src 'self' blob:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response (the documentation pages' own CSP)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message.get("headers", []), HEADERS)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope, receive, send) -> None:
        start, chunks = None, []

        async def buffer(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                start["headers"] = _with_headers(start.get("headers", []),
                                                 {**HEADERS, "content-security-policy": docs_csp(body)})
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, buffer)


def _with_headers(raw: list, headers: dict[str, str]) -> list:
    names = {k.encode() for k in headers}
    return [(k, v) for k, v in raw if k.lower() not in names] + [(k.encode(), v.encode()) for k, v in headers.items()]
