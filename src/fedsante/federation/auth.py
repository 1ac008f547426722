"""Node authentication on every request: an Ed25519 signature over method, path, time and body."""

from __future__ import annotations

import math
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.common.errors import Unauthorized
from fedsante.common.keys import sha256_hex, sign, verify

NODE_HEADER = "x-fedsante-node"
TIME_HEADER = "x-fedsante-time"
SIGNATURE_HEADER = "x-fedsante-signature"
MAX_SKEW_SECONDS = 60.0


def _message(method: str, path: str, timestamp: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{path}\n{timestamp}\n{sha256_hex(body)}".encode()


def sign_request(key: Ed25519PrivateKey, node_id: str, method: str, path: str, body: bytes) -> dict[str, str]:
    """Headers that authenticate this request as coming from ``node_id``."""
    timestamp = f"{time.time():.3f}"
    return {
        NODE_HEADER: node_id,
        TIME_HEADER: timestamp,
        SIGNATURE_HEADER: sign(key, _message(method, path, timestamp, body)),
    }


def verify_request(public_key: str, headers: dict[str, str], method: str, path: str, body: bytes) -> None:
    """Raise :class:`Unauthorized` unless the headers carry a fresh, valid signature."""
    timestamp = headers.get(TIME_HEADER, "")
    try:
        skew = abs(time.time() - float(timestamp))
    except ValueError:
        raise Unauthorized(f"Header {TIME_HEADER!r} must be a Unix time; got {timestamp!r}.") from None
    if not math.isfinite(skew) or skew > MAX_SKEW_SECONDS:
        raise Unauthorized(
            f"Request time is {skew:.0f} s away from the desk's clock (limit {MAX_SKEW_SECONDS:g} s). "
            "Synchronise the node's clock (NTP)."
        )
    if not verify(public_key, _message(method, path, timestamp, body), headers.get(SIGNATURE_HEADER, "")):
        raise Unauthorized(
            f"Signature of node {headers.get(NODE_HEADER)!r} does not verify with its registered key. "
            "Check the node's key file or re-register its public key at the desk."
        )
