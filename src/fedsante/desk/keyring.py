"""The desk's signing keys: one current Ed25519 key, older ones kept public for verification.

Private keys live in ``<data_dir>/keys/<key id>.pem`` (mode 0600, never committed). The public list
``<data_dir>/keys/keyring.json`` records every key with its creation and retirement time, so that
approvals signed before a rotation can still be verified by nodes that trust the older key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.common.errors import ConfigError
from fedsante.common.keys import generate_key, load_key, public_key_b64
from fedsante.federation.approval import iso, key_id


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    public_key: str
    created_at: str
    retired_at: str | None = None


class Keyring:
    """Reads the keyring from disk on every use, so a rotation by CLI applies to a running desk."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir) / "keys"
        self.index = self.folder / "keyring.json"

    def keys(self) -> list[KeyInfo]:
        if not self.index.exists():
            return []
        try:
            return [KeyInfo(**item) for item in json.loads(self.index.read_text(encoding="utf-8"))]
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"Desk keyring {self.index} is unreadable ({exc}).") from None

    def ensure(self) -> KeyInfo:
        """The current key, creating the first one if the keyring is empty."""
        current = [k for k in self.keys() if k.retired_at is None]
        return current[-1] if current else self.rotate()

    def rotate(self, now: datetime | None = None) -> KeyInfo:
        """Create a new current key and retire the previous one (its public key stays listed)."""
        now = now or datetime.now(UTC)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".new-{os.getpid()}.pem"
        key = generate_key(tmp)
        public = public_key_b64(key)
        info = KeyInfo(key_id=key_id(public), public_key=public, created_at=iso(now))
        tmp.rename(self.folder / f"{info.key_id}.pem")
        keys = [k if k.retired_at else KeyInfo(**{**asdict(k), "retired_at": iso(now)}) for k in self.keys()]
        self._write([*keys, info])
        return info

    def current(self) -> tuple[KeyInfo, Ed25519PrivateKey]:
        info = self.ensure()
        return info, load_key(self.folder / f"{info.key_id}.pem")

    def trusted(self) -> dict[str, str]:
        """Key id -> public key, for every key this desk ever signed with."""
        return {k.key_id: k.public_key for k in self.keys()}

    def _write(self, keys: list[KeyInfo]) -> None:
        tmp = self.index.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(k) for k in keys], indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.index)
