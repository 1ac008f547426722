"""Secure aggregation (SecAgg+, Bell et al. 2020, after Bonawitz et al. 2017) as pure message handlers.

The desk (``SecAggServer``) relays and counts; the nodes (``SecAggClient``) hold every secret.

1. advertise: each client sends two X25519 public keys (``KeyAdvert``); the desk returns the ``Roster``.
2. share keys: each client Shamir-shares its self-mask seed ``b`` and masking key ``s_sk`` among its
   neighbours, sealed with ChaCha20-Poly1305 under X25519 + HKDF keys (``ShareKeys``); the desk
   forwards the ciphertexts unread (``ForwardedShares``).
3. masked input: ``q(x) + PRG(b) + sum_j +-PRG(s_ij) mod 2**bits`` (``MaskedInput``), ``s_ij`` from
   X25519 between masking keys, PRG a ChaCha20 keystream.
4. unmask: the desk names survivors and dropped clients (``UnmaskRequest``); each client reveals shares
   of ``b`` for survivors and of ``s_sk`` for dropped clients, never both for one client
   (``UnmaskShares``); the desk rebuilds them, unmasks the *sum* only and dequantises it.

With fewer than ``threshold`` clients at any stage the round fails with RunFailed, nothing aggregated.
Model: honest-but-curious desk; the transport authenticates senders (fedsante signs its messages).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping, Sequence

import numpy as np
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedsante.common.errors import RunFailed
from fedsante.privacy.quantize import dequantize, quantize
from fedsante.privacy.secagg_messages import (ForwardedShares, KeyAdvert, MaskedInput, Roster, SecAggConfig, Share,
                                              ShareKeys, UnmaskRequest, UnmaskShares, _frame)

__all__ = ["ForwardedShares", "KeyAdvert", "MaskedInput", "Roster", "SecAggClient", "SecAggConfig", "SecAggServer",
           "ShareKeys", "UnmaskRequest", "UnmaskShares", "secagg_round_cost", "simulate_round"]
STAGES = ("share_keys", "masked_input", "unmask")


def _hkdf(secret: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"fedsante/secagg/v1/" + info).derive(secret)


def _agree(sk: X25519PrivateKey, pk: bytes, owner: str) -> bytes:
    try:
        return sk.exchange(X25519PublicKey.from_public_bytes(pk))
    except ValueError as exc:
        raise RunFailed(f"secure aggregation: the public key advertised by client {owner!r} is invalid.") from exc


def _prg(seed: bytes, cfg: SecAggConfig) -> np.ndarray:
    """Uniform residues modulo ``2**bits`` from a ChaCha20 keystream keyed by HKDF(seed)."""
    cipher = Cipher(algorithms.ChaCha20(_hkdf(seed, b"prg"), bytes(16)), mode=None)
    stream = cipher.encryptor().update(bytes(8 * cfg.vector_length))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64) & np.uint64(2**cfg.bits - 1)


def _pair_mask(sk: X25519PrivateKey, peer: str, roster: Roster, cfg: SecAggConfig) -> np.ndarray:
    return _prg(_hkdf(_agree(sk, roster.by_id[peer].s_pk, peer), b"mask", salt=roster.digest), cfg)


def _split(secret: bytes, threshold: int, n: int) -> list[bytes]:
    """Shamir shares (pycryptodome, 16-byte blocks) of each block of ``secret``, joined per holder 1..n."""
    blocks = [Shamir.split(threshold, n, secret[o:o + 16]) for o in range(0, len(secret), 16)]
    return [b"".join(block[k][1] for block in blocks) for k in range(n)]


def _combine(shares: Sequence[Share]) -> bytes:
    return b"".join(Shamir.combine([(i, s[o:o + 16]) for i, s in shares]) for o in range(0, len(shares[0][1]), 16))


def _quorum(stage: str, remaining: int, of: int, threshold: int) -> None:
    if remaining < threshold:
        raise RunFailed(f"round failed: {remaining} of {of} nodes remain, the secure aggregation threshold is "
                        f"{threshold}; nothing was aggregated (stage: {stage}).")


def _refuse(client: str, why: str) -> RunFailed:
    return RunFailed(f"secure aggregation: client {client!r} refuses to unmask: {why}; that would let the desk "
                     "unmask an individual input.")


class SecAggClient:
    """One node's side of a round. Keys and ``b`` come from the OS; ``rng`` only drives stochastic rounding."""

    def __init__(self, client_id: str, config: SecAggConfig, rng: np.random.Generator | None = None) -> None:
        self.client_id, self.config, self._rng = client_id, config, rng
        self._c_sk, self._s_sk, self._b = X25519PrivateKey.generate(), X25519PrivateKey.generate(), os.urandom(16)
        self._roster: Roster | None = None
        self._held: dict[str, tuple[Share, Share]] = {}
        self._sent_input = False
        self._revealed_b: set[str] = set()
        self._revealed_sk: set[str] = set()

    def advertise_keys(self) -> KeyAdvert:
        pub = (self._c_sk.public_key().public_bytes_raw(), self._s_sk.public_key().public_bytes_raw())
        return KeyAdvert(self.client_id, *pub)

    def _channel(self, roster: Roster, peer: str) -> ChaCha20Poly1305:
        return ChaCha20Poly1305(_hkdf(_agree(self._c_sk, roster.by_id[peer].c_pk, peer), b"seal", salt=roster.digest))

    def share_keys(self, roster: Roster) -> ShareKeys:
        """Shamir-share ``b`` and ``s_sk`` (32 bytes: two 16-byte blocks) and seal each neighbour's shares."""
        me, t = self.client_id, self.config.threshold
        if roster.by_id.get(me) != self.advertise_keys():
            raise RunFailed(f"secure aggregation: the roster does not carry the keys of client {me!r}.")
        keys = [k for a in roster.adverts for k in (a.c_pk, a.s_pk)]
        if len(set(keys)) != len(keys) or len(roster.by_id) != len(roster.adverts):
            raise RunFailed("secure aggregation: the roster repeats a client or a public key; the round stops.")
        holders = roster.holders(me)
        _quorum("share keys", len(holders), self.config.holders, t)
        b_shares, sk_shares = _split(self._b, t, len(holders)), _split(self._s_sk.private_bytes_raw(), t, len(holders))
        sealed: dict[str, bytes] = {}
        for k, holder in enumerate(holders):
            if holder == me:
                self._held[me] = ((k + 1, b_shares[k]), (k + 1, sk_shares[k]))
                continue
            nonce, aad = os.urandom(12), _frame(me.encode(), holder.encode())
            sealed[holder] = nonce + self._channel(roster, holder).encrypt(nonce, b_shares[k] + sk_shares[k], aad)
        self._roster = roster
        return ShareKeys(me, sealed)

    def masked_input(self, vector: np.ndarray, forwarded: ForwardedShares) -> MaskedInput:
        """Open the shares addressed to this client, then mask the quantised ``vector``."""
        roster, cfg, me = self._roster, self.config, self.client_id
        if roster is None or forwarded.recipient != me or self._sent_input:  # masking twice would leak x1 - x2
            raise RunFailed(f"secure aggregation: client {me!r} got masked-input material out of order or twice.")
        x = np.asarray(vector, dtype=np.float64)
        if x.shape != (cfg.vector_length,):
            raise ValueError(f"Client {me!r}: the update has shape {x.shape}, expected ({cfg.vector_length},).")
        for sender, blob in forwarded.ciphertexts.items():
            if sender not in roster.graph[me]:
                raise RunFailed(f"secure aggregation: client {me!r} got shares from {sender!r}, not a neighbour.")
            try:
                aad = _frame(sender.encode(), me.encode())
                plain = self._channel(roster, sender).decrypt(blob[:12], blob[12:], aad)
            except (InvalidTag, ValueError) as exc:
                raise RunFailed(f"secure aggregation: the sealed shares from client {sender!r} to {me!r} failed "
                                "authentication (altered in transit or not made for this round).") from exc
            if len(plain) != 48:
                raise RunFailed(f"secure aggregation: the sealed shares from client {sender!r} are malformed.")
            k = roster.holders(sender).index(me) + 1
            self._held[sender] = ((k, plain[:16]), (k, plain[16:]))
        _quorum("masked input", 1 + len(forwarded.ciphertexts), len(roster.graph[me]) + 1, cfg.threshold)
        y = quantize(x, cfg.clip, cfg.bits, cfg.n_clients, rng=self._rng) + _prg(self._b, cfg)
        for peer in sorted(forwarded.ciphertexts):
            mask = _pair_mask(self._s_sk, peer, roster, cfg)
            y = y + mask if me < peer else y - mask
        self._sent_input = True
        return MaskedInput(me, y & np.uint64(2**cfg.bits - 1))

    def unmask(self, request: UnmaskRequest) -> UnmaskShares:
        """Reveal shares of ``b`` for survivors and of ``s_sk`` for dropped clients, never both for one."""
        me, roster = self.client_id, self._roster
        if not self._sent_input or roster is None:
            raise RunFailed(f"secure aggregation: client {me!r} was asked to unmask before it sent its input.")
        if request.survivors & request.dropped:
            raise _refuse(me, f"{sorted(request.survivors & request.dropped)} listed as both surviving and dropped")
        if me in request.dropped or me not in request.survivors:
            raise _refuse(me, "it sent its masked input but is not listed as a survivor")
        b_for, sk_for = request.survivors & self._held.keys(), request.dropped & self._held.keys()
        if b_for & self._revealed_sk or sk_for & self._revealed_b:
            raise _refuse(me, f"{sorted(b_for & self._revealed_sk | sk_for & self._revealed_b)} were already "
                              "unmasked the other way")
        if not request.survivors <= roster.by_id.keys() or not roster.connected(request.survivors):
            raise _refuse(me, "the survivors do not form one connected mask graph")
        _quorum("unmask", len(request.survivors), len(request.survivors | request.dropped), self.config.threshold)
        self._revealed_b |= b_for
        self._revealed_sk |= sk_for
        return UnmaskShares(me, {o: self._held[o][0] for o in b_for}, {o: self._held[o][1] for o in sk_for})


class SecAggServer:
    """The desk's side: routes, checks thresholds and rebuilds only the sum. It keeps public keys and
    membership sets; masked vectors and shares pass through ``aggregate``; no plain update ever exists."""

    def __init__(self, config: SecAggConfig) -> None:
        self.config = config
        self.roster: Roster | None = None
        self.shared: frozenset[str] = frozenset()
        self.survivors: frozenset[str] = frozenset()

    def _need_roster(self) -> Roster:
        if self.roster is None:
            raise RunFailed("secure aggregation: the desk has no roster yet; collect the keys first.")
        return self.roster

    def collect_keys(self, adverts: Sequence[KeyAdvert]) -> Roster:
        ids = [a.client_id for a in adverts]
        if len(set(ids)) != len(ids) or len(ids) > self.config.n_clients:
            raise RunFailed(f"secure aggregation: {len(ids)} key adverts from {len(set(ids))} clients; at most "
                            f"{self.config.n_clients} distinct clients may take part (the quantisation bound).")
        _quorum("advertise keys", len(ids), self.config.n_clients, self.config.threshold)
        self.roster = Roster(tuple(sorted(adverts, key=lambda a: a.client_id)), self.config.neighbours)
        return self.roster

    def route_shares(self, messages: Sequence[ShareKeys]) -> dict[str, ForwardedShares]:
        roster, t = self._need_roster(), self.config.threshold
        for m in messages:
            if m.sender not in roster.by_id or set(m.ciphertexts) != roster.graph[m.sender]:
                raise RunFailed(f"secure aggregation: client {m.sender!r} sent sealed shares for "
                                f"{sorted(m.ciphertexts)}, not for its neighbours; the round stops.")
        shared = frozenset(m.sender for m in messages)
        _quorum("share keys", len(shared), len(roster.adverts), t)
        for owner in sorted(shared):
            alive_holders = len(set(roster.holders(owner)) & shared)
            _quorum(f"share keys, holders of {owner!r}", alive_holders, self.config.holders, t)
        self.shared = shared
        return {r: ForwardedShares(r, {m.sender: m.ciphertexts[r] for m in messages if r in m.ciphertexts})
                for r in sorted(shared)}

    def unmask_request(self, masked: Sequence[MaskedInput]) -> UnmaskRequest:
        roster, cfg = self._need_roster(), self.config
        for m in masked:
            v = m.vector
            if m.sender not in self.shared or v.dtype != np.uint64 or v.shape != (cfg.vector_length,) \
                    or np.any(v >> np.uint64(cfg.bits)):
                raise RunFailed(f"secure aggregation: the masked input of client {m.sender!r} is not a valid vector "
                                f"of {cfg.vector_length} residues from a client that shared keys.")
        survivors = frozenset(m.sender for m in masked)
        _quorum("masked input", len(survivors), len(roster.adverts), cfg.threshold)
        if not roster.connected(survivors):
            raise RunFailed("round failed: the surviving nodes no longer form one connected mask graph, so unmasking "
                            "would reveal partial sums; nothing was aggregated.")
        self.survivors = survivors
        return UnmaskRequest(survivors=survivors, dropped=self.shared - survivors)

    def aggregate_ints(self, masked: Sequence[MaskedInput], responses: Sequence[UnmaskShares]) -> np.ndarray:
        """The exact sum of the survivors' quantised inputs, as uint64 residues modulo ``2**bits``."""
        roster, cfg = self._need_roster(), self.config
        if {m.sender for m in masked} != self.survivors or len(masked) != len(self.survivors):
            raise RunFailed("secure aggregation: the masked inputs differ from those the unmask request named.")
        responders = {r.sender for r in responses}
        if not responders <= self.survivors or len(responders) != len(responses):
            raise RunFailed("secure aggregation: unmask shares came from a client that is not a survivor, or twice.")
        _quorum("unmask", len(responders), len(roster.adverts), cfg.threshold)
        total = np.sum([m.vector for m in masked], axis=0, dtype=np.uint64)
        for owner in sorted(self.survivors):
            total -= _prg(self._rebuild(owner, [r.b_shares for r in responses], "self-mask seed"), cfg)
        for owner in sorted(self.shared - self.survivors):
            maskers = roster.graph[owner] & self.survivors
            if not maskers:
                continue
            s_sk = X25519PrivateKey.from_private_bytes(self._rebuild(owner, [r.sk_shares for r in responses], "key"))
            if s_sk.public_key().public_bytes_raw() != roster.by_id[owner].s_pk:
                raise RunFailed(f"secure aggregation: the masking key rebuilt for client {owner!r} does not match its "
                                "advertised key (a share was altered); nothing was aggregated.")
            for peer in sorted(maskers):
                mask = _pair_mask(s_sk, peer, roster, cfg)
                total = total - mask if peer < owner else total + mask
        return total & np.uint64(2**cfg.bits - 1)

    def _rebuild(self, owner: str, per_responder: list[dict[str, Share]], what: str) -> bytes:
        shares = dict(d[owner] for d in per_responder if owner in d)
        if len(shares) < self.config.threshold:
            raise RunFailed(f"round failed: {len(shares)} shares of the {what} of client {owner!r} arrived, the secure "
                            f"aggregation threshold is {self.config.threshold}; nothing was aggregated.")
        return _combine(sorted(shares.items())[: self.config.threshold])

    def aggregate(self, masked: Sequence[MaskedInput], responses: Sequence[UnmaskShares]) -> np.ndarray:
        """The float64 sum of the survivors' clipped updates."""
        cfg = self.config
        return dequantize(self.aggregate_ints(masked, responses), cfg.clip, cfg.bits, cfg.n_clients)


def simulate_round(config: SecAggConfig, updates: Mapping[str, np.ndarray],
                   dropouts: Mapping[str, Collection[str]] | None = None,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """One full round in memory; ``dropouts[stage]`` (a stage of ``STAGES``) names clients silent from then on.

    >>> cfg = SecAggConfig(n_clients=3, threshold=2, vector_length=2, clip=1.0)
    >>> ups = {"a": np.array([0.5, -0.25]), "b": np.array([0.25, 0.5]), "c": np.array([-0.5, 0.125])}
    >>> np.round(simulate_round(cfg, ups, dropouts={"masked_input": ["c"]}), 6)
    array([0.75, 0.25])
    """
    dropouts = dropouts or {}
    if set(dropouts) - set(STAGES):
        raise ValueError(f"Unknown dropout stages {sorted(set(dropouts) - set(STAGES))}; use {STAGES}.")
    clients = {cid: SecAggClient(cid, config, rng) for cid in updates}
    server = SecAggServer(config)
    roster = server.collect_keys([c.advertise_keys() for c in clients.values()])
    alive = set(clients) - set(dropouts.get("share_keys", ()))
    routed = server.route_shares([clients[c].share_keys(roster) for c in sorted(alive)])
    alive -= set(dropouts.get("masked_input", ()))
    masked = [clients[c].masked_input(updates[c], routed[c]) for c in sorted(alive)]
    request = server.unmask_request(masked)
    alive -= set(dropouts.get("unmask", ()))
    return server.aggregate(masked, [clients[c].unmask(request) for c in sorted(alive)])


def secagg_round_cost(n_clients: int, dim: int, *, neighbours: int | None = None) -> float:
    """Seconds for one full in-memory round of ``n_clients`` random ``dim``-vectors (for ``fedsante bench``)."""
    holders = n_clients if neighbours is None else min(neighbours + 1, n_clients)
    config = SecAggConfig(n_clients, holders // 2 + 1, dim, clip=1.0, neighbours=neighbours)
    gen = np.random.default_rng(0)
    updates = {f"node-{i:03d}": gen.uniform(-1.0, 1.0, dim) for i in range(n_clients)}
    start = time.perf_counter()
    simulate_round(config, updates)
    return time.perf_counter() - start
