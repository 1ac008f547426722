"""The messages and settings of secure aggregation (see :mod:`fedsante.privacy.secagg`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from fedsante.common.errors import ConfigError
from fedsante.privacy.quantize import levels

Share = tuple[int, bytes]


@dataclass(frozen=True)
class SecAggConfig:
    """Round settings. ``neighbours=None`` masks with every other client (SecAgg); an even ``k`` masks with
    ``k`` ring neighbours (SecAgg+). ``threshold`` shares rebuild a secret; it must be a majority of each
    secret's holders so that no two disjoint groups can both rebuild one. ``clip`` is one bound or one per
    coordinate (e.g. a last coordinate carrying the node's weight ``n``)."""
    n_clients: int
    threshold: int
    vector_length: int
    clip: float | tuple[float, ...]
    bits: int = 32
    neighbours: int | None = None

    def __post_init__(self) -> None:
        try:
            levels(self.bits, self.n_clients)
        except ValueError as exc:
            raise ConfigError(f"secure aggregation: {exc}") from exc
        clip = np.asarray(self.clip, dtype=np.float64)
        if self.n_clients < 2 or self.vector_length < 1 or clip.shape not in ((), (self.vector_length,)) \
                or not np.all(np.isfinite(clip) & (clip > 0)):
            raise ConfigError("secure aggregation needs 'n_clients' >= 2, 'vector_length' >= 1 and 'clip' > 0 (one "
                              f"value or one per coordinate). Got {self.n_clients}, {self.vector_length}, {self.clip}.")
        if self.neighbours is not None and (self.neighbours < 2 or self.neighbours % 2):
            raise ConfigError(f"'neighbours' must be None or an even integer >= 2. Got {self.neighbours!r}.")
        if not (2 <= self.threshold <= self.holders and 2 * self.threshold > self.holders):
            raise ConfigError(f"'threshold' must be >= 2 and a majority of the {self.holders} holders of each "
                              f"secret, i.e. in [{self.holders // 2 + 1}, {self.holders}]. Got {self.threshold!r}.")

    @property
    def holders(self) -> int:
        """How many clients (the owner included) hold shares of each client's secrets."""
        return self.n_clients if self.neighbours is None else min(self.neighbours + 1, self.n_clients)


@dataclass(frozen=True)
class KeyAdvert:
    """Client -> desk: raw X25519 public keys, ``c_pk`` to seal shares and ``s_pk`` to agree masks."""
    client_id: str
    c_pk: bytes
    s_pk: bytes


@dataclass(frozen=True)
class Roster:
    """Desk -> every client: the round's adverts; they fix the neighbour graph and the session digest."""
    adverts: tuple[KeyAdvert, ...]
    neighbours: int | None = None

    @cached_property
    def by_id(self) -> dict[str, KeyAdvert]:
        return {a.client_id: a for a in self.adverts}

    @cached_property
    def digest(self) -> bytes:
        ordered = sorted(self.adverts, key=lambda a: a.client_id)
        return hashlib.sha256(_frame(*(p for a in ordered for p in (a.client_id.encode(), a.c_pk, a.s_pk)))).digest()

    @cached_property
    def graph(self) -> dict[str, frozenset[str]]:
        """Each client's neighbours: everyone, or ``k`` on a ring ordered by a hash of the digest."""
        ids = sorted(self.by_id)
        if self.neighbours is None or self.neighbours >= len(ids) - 1:
            return {i: frozenset(ids) - {i} for i in ids}
        ring, half = sorted(ids, key=lambda i: hashlib.sha256(self.digest + i.encode()).digest()), self.neighbours // 2
        steps = [d for d in range(-half, half + 1) if d]
        return {c: frozenset(ring[(p + d) % len(ring)] for d in steps) for p, c in enumerate(ring)}

    def holders(self, owner: str) -> list[str]:
        """Who holds shares of ``owner``'s secrets; the share index is the position + 1."""
        return sorted(self.graph[owner] | {owner})

    def connected(self, members: frozenset[str]) -> bool:
        """Whether ``members`` form one component of the mask graph (else partial sums would leak)."""
        seen, todo = set(), [min(members)] if members else []
        while todo:
            node = todo.pop()
            seen.add(node)
            todo += (self.graph[node] & members) - seen
        return seen == members


@dataclass(frozen=True)
class ShareKeys:
    """Client -> desk: sealed shares, one ciphertext (nonce + AEAD output) per neighbour."""
    sender: str
    ciphertexts: dict[str, bytes]


@dataclass(frozen=True)
class ForwardedShares:
    """Desk -> one client: the ciphertexts addressed to it, by sender."""
    recipient: str
    ciphertexts: dict[str, bytes]


@dataclass(frozen=True, eq=False)
class MaskedInput:
    """Client -> desk: the masked quantised update, uint64 residues modulo ``2**bits``."""
    sender: str
    vector: np.ndarray


@dataclass(frozen=True)
class UnmaskRequest:
    """Desk -> survivors: who sent a masked input, and who dropped after sharing keys."""
    survivors: frozenset[str]
    dropped: frozenset[str]


@dataclass(frozen=True)
class UnmaskShares:
    """Client -> desk: shares of ``b`` of survivors and of ``s_sk`` of dropped clients, by owner."""
    sender: str
    b_shares: dict[str, Share]
    sk_shares: dict[str, Share]


def _frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)
