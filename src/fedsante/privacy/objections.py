"""The cryptography of patient objections (opt-out): sealed boxes and keyed hashes, from PyNaCl and hmac.

A patient names a hospital and the identifier the hospital knows them by. The desk seals the
identifier to that hospital's X25519 public key (libsodium's sealed box: an ephemeral key pair,
X25519 and XSalsa20-Poly1305) and stores only the ciphertext. Only the hospital node can open it;
it then keeps a keyed hash (HMAC-SHA256 under a secret that never leaves the node) rather than the
identifier itself, and excludes every patient whose identifier hashes to a stored value.

A patient may also give their date of birth, a second factor sealed with the identifier (a line
break between them, which an identifier cannot contain); a node whose policy asks for it excludes a
patient only when both match its record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from datetime import datetime
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from fedsante.common.errors import ConfigError, DataError

MAX_IDENTIFIER = 100
RECEIPT_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud or copied by hand


def normalise(identifier: str) -> str:
    """The identifier as compared: surrounding spaces removed; refused when empty, too long or not printable.

    >>> normalise("  Q4ZK7M2TXB5HWR3NJ6PA ")
    'Q4ZK7M2TXB5HWR3NJ6PA'
    """
    if not isinstance(identifier, str):
        raise DataError(f"A patient identifier must be text. Got {type(identifier).__name__}.")
    value = identifier.strip()
    if not value or len(value) > MAX_IDENTIFIER or not value.isprintable():
        raise DataError(f"A patient identifier must be 1 to {MAX_IDENTIFIER} printable characters.")
    return value


def new_receipt() -> str:
    """A receipt code for the patient: 16 characters (80 bits) in 4 groups, e.g. ``K7QM-9ZTX-...``.

    >>> code = new_receipt(); len(code), code.count("-")
    (19, 3)
    """
    chars = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(16))
    return "-".join(chars[i:i + 4] for i in range(0, 16, 4))


def receipt_id(receipt: str) -> str:
    """What the desk stores for a receipt: its SHA-256, so that a copy of the database cannot withdraw it.

    >>> receipt_id("k7qm-9ztx-abcd-efgh") == receipt_id(" K7QM9ZTXABCDEFGH ")
    True
    """
    code = "".join(ch for ch in receipt.upper() if ch.isalnum())
    return hashlib.sha256(code.encode()).hexdigest()


def generate_box_key(path: Path) -> PrivateKey:
    """A new X25519 key for the node's objections, written (base64, mode 0600) to ``path``."""
    key = PrivateKey.generate()
    _write_secret(path, base64.b64encode(bytes(key)))
    return key


def load_box_key(path: Path) -> PrivateKey:
    try:
        return PrivateKey(base64.b64decode(path.read_bytes().strip(), validate=True))
    except FileNotFoundError:
        raise ConfigError(f"The node's objection key {path} is missing; 'fedsante node serve' creates it.") from None
    except (binascii.Error, ValueError, TypeError):
        raise ConfigError(f"The node's objection key {path} is not a base64 X25519 key.") from None


def public_b64(key: PrivateKey) -> str:
    return base64.b64encode(bytes(key.public_key)).decode()


def parse_box_public_key(value: str) -> PublicKey:
    """A hospital's X25519 public key from base64; refused unless 32 bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise DataError("The objection public key is not valid base64.") from None
    if len(raw) != 32:
        raise DataError(f"The objection public key must be 32 bytes (X25519). Got {len(raw)}.")
    return PublicKey(raw)


BIRTH_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d")


def normalise_birth_date(value: str) -> str:
    """A date of birth as compared, ``YYYY-MM-DD``; also read as ``DD/MM/YYYY`` or ``YYYYMMDD``.

    >>> normalise_birth_date(" 07/03/1951 "), normalise_birth_date("19510307")
    ('1951-03-07', '1951-03-07')
    """
    text = value.strip() if isinstance(value, str) else ""
    for fmt in BIRTH_DATE_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if 1850 <= parsed.year <= 2200:
            return parsed.date().isoformat()
    raise DataError("A date of birth must be a date written YYYY-MM-DD (or DD/MM/YYYY).")


def seal(public_key_b64: str, identifier: str, birth_date: str | None = None) -> str:
    """The identifier (and the date of birth, if given) sealed to the hospital's key, as base64; only that
    hospital can open it."""
    box = SealedBox(parse_box_public_key(public_key_b64))
    text = normalise(identifier) + (f"\n{normalise_birth_date(birth_date)}" if birth_date else "")
    return base64.b64encode(box.encrypt(text.encode())).decode()


def open_objection(key: PrivateKey, ciphertext_b64: str) -> tuple[str, str | None]:
    """The identifier and the date of birth (None when the patient gave none) of a sealed objection."""
    identifier, _, birth_date = unseal(key, ciphertext_b64).partition("\n")
    return identifier, birth_date or None


def unseal(key: PrivateKey, ciphertext_b64: str) -> str:
    """Open a sealed identifier; refused (DataError) when it was not sealed to this key or was altered."""
    try:
        return SealedBox(key).decrypt(base64.b64decode(ciphertext_b64, validate=True)).decode()
    except (CryptoError, binascii.Error, ValueError, UnicodeDecodeError):
        raise DataError("An objection could not be opened with this node's key (wrong hospital or altered).") from None


def load_hash_key(path: Path) -> bytes:
    """The node's secret for keyed hashes of identifiers, created (32 random bytes, mode 0600) if absent."""
    if not path.exists():
        _write_secret(path, base64.b64encode(secrets.token_bytes(32)))
    return base64.b64decode(path.read_bytes().strip())


def keyed_hash(secret: bytes, identifier: str) -> str:
    """HMAC-SHA256 of the normalised identifier under the node's secret, hex.

    >>> keyed_hash(b"k" * 32, "Q4ZK7M2TXB5HWR3NJ6PA") == keyed_hash(b"k" * 32, " Q4ZK7M2TXB5HWR3NJ6PA")
    True
    """
    return hmac.new(secret, normalise(identifier).encode(), hashlib.sha256).hexdigest()


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data + b"\n")
