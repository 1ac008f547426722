"""Node authentication on every request: an Ed25519 signature over method, path, time, nonce and body.

A request is accepted once: the desk remembers each node's nonces for as long as their time is within
the accepted clock skew (:class:`NonceCache`), and refuses requests signed before it started, so a
captured request (a long-poll that would hand the node's next task to whoever replays it) cannot be
replayed, not even across a restart of the desk.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.common.errors import Unauthorized
from fedsante.common.keys import sha256_hex, sign, verify

NODE_HEADER = "x-fedsante-node"
TIME_HEADER = "x-fedsante-time"
NONCE_HEADER = "x-fedsante-nonce"
SIGNATURE_HEADER = "x-fedsante-signature"
MAX_SKEW_SECONDS = 60.0
NONCE = re.compile(r"^[0-9a-f]{32}$")


def _message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{sha256_hex(body)}".encode()


def sign_request(key: Ed25519PrivateKey, node_id: str, method: str, path: str, body: bytes) -> dict[str, str]:
    """Headers that authenticate this request, once, as coming from ``node_id``."""
    timestamp, nonce = f"{time.time():.3f}", secrets.token_hex(16)
    return {
        NODE_HEADER: node_id,
        TIME_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign(key, _message(method, path, timestamp, nonce, body)),
    }


class NonceCache:
    """The nonces each node used within the accepted skew; requests signed before ``since`` are refused."""

    def __init__(self, since: float | None = None, window: float = 2 * MAX_SKEW_SECONDS) -> None:
        self.since = time.time() if since is None else since
        self.window = window
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def use(self, node_id: str, nonce: str, signed_at: float) -> None:
        """Record a nonce; Unauthorized if it was used already or the request predates this desk process."""
        if signed_at < self.since - 1.0:  # a second of rounding: the node's clock may be a little behind
            raise Unauthorized("The request was signed before the desk started: a replay, or a node clock behind "
                               "the desk's. Synchronise the node's clock (NTP); the node retries with a new request.")
        now = time.time()
        with self._lock:
            seen = self._seen.setdefault(node_id, {})
            for old in [n for n, expiry in seen.items() if expiry < now]:
                del seen[old]
            if nonce in seen:
                raise Unauthorized(f"Request nonce of node {node_id!r} was already used: a replayed request is "
                                   "never accepted twice.")
            seen[nonce] = now + self.window


def verify_request(public_key: str, headers: dict[str, str], method: str, path: str, body: bytes, *,
                   nonces: NonceCache | None = None) -> None:
    """Raise :class:`Unauthorized` unless the headers carry a fresh, valid, never used signature."""
    timestamp, nonce = headers.get(TIME_HEADER, ""), headers.get(NONCE_HEADER, "")
    try:
        signed_at = float(timestamp)
    except ValueError:
        raise Unauthorized(f"Header {TIME_HEADER!r} must be a Unix time; got {timestamp!r}.") from None
    skew = abs(time.time() - signed_at)
    if not math.isfinite(skew) or skew > MAX_SKEW_SECONDS:
        raise Unauthorized(
            f"Request time is {skew:.0f} s away from the desk's clock (limit {MAX_SKEW_SECONDS:g} s). "
            "Synchronise the node's clock (NTP)."
        )
    if not NONCE.match(nonce):
        raise Unauthorized(f"Header {NONCE_HEADER!r} must be 32 hexadecimal digits (a fresh random nonce per "
                           "request); update the node's fedsante.")
    if not verify(public_key, _message(method, path, timestamp, nonce, body), headers.get(SIGNATURE_HEADER, "")):
        raise Unauthorized(
            f"Signature of node {headers.get(NODE_HEADER)!r} does not verify with its registered key. "
            "Check the node's key file or re-register its public key at the desk."
        )
    if nonces is not None:
        nonces.use(headers.get(NODE_HEADER, ""), nonce, signed_at)
