"""Ed25519 keys and signatures (``cryptography``), and the canonical JSON they sign.

Keys are stored as PEM files under a data directory with mode 0600; public keys travel as
base64 of their 32 raw bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedsante.common.errors import BadRequest, ConfigError


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no spaces, UTF-8. What every signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def generate_key(path: Path) -> Ed25519PrivateKey:
    """Create a new private key at ``path`` (refuses to overwrite an existing one)."""
    if path.exists():
        raise ConfigError(f"Key file {path} already exists; refusing to overwrite it. Delete it first to rotate.")
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"Key file {path} does not exist. Create it with 'fedsante node init'.") from None
    except ValueError as exc:
        raise ConfigError(f"Key file {path} is not a PEM private key ({exc}).") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"Key file {path} holds a {type(key).__name__}, expected an Ed25519 private key.")
    return key


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError):
        raise BadRequest(
            f"Public key {text[:16]!r}... is not base64 of 32 raw Ed25519 bytes."
        ) from None


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    return base64.b64encode(key.sign(data)).decode()


def verify(public_key: str, data: bytes, signature: str) -> bool:
    """True when ``signature`` (base64) is ``public_key``'s signature of ``data``."""
    try:
        parse_public_key(public_key).verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError, BadRequest):
        return False
    return True
