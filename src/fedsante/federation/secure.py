"""Secure aggregation carried by the federation protocol: wire format and the desk's four stages.

Once per run, two set-up stages prepare every round (round 0 is the standardisation statistics): ``secagg_keys`` (each node advertises two fresh
X25519 keys per round) and ``secagg_shares`` (each node seals Shamir shares of each round's secrets
for the others; the desk forwards the ciphertexts). Each round is then two stages: ``fit`` (each
node sends its masked update, with its weight ``n`` as the last coordinate) and ``secagg_unmask``
(survivors reveal what the desk needs to remove the masks from the *sum*). After the evaluation, one
more round of the same kind sums the nodes' statistics per subgroup (``subgroups``). The desk never holds an individual update. The cryptography is in
:mod:`fedsante.privacy.secagg`; this module only moves its messages.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, is_dataclass

import numpy as np

from fedsante.common.errors import RunFailed
from fedsante.privacy import secagg
from fedsante.privacy.secagg import SecAggConfig, SecAggServer

BITS = 53  # every residue and every sum is exact in float64
UPDATE_CLIP = 1e5  # |n * (local - global)| per coordinate; a node refuses an update beyond it
WEIGHT_CLIP = 1e7  # the node's number of training patients
SUM_CLIP = 1e9  # |sum| of a raw clinical variable over a node's patients (e.g. 100,000 x 10,000)
SQUARES_CLIP = 1e11  # its sum of squares (e.g. 100,000 patients x 600 mg/dl squared, with margin)
TYPES = {cls.__name__: cls for cls in (secagg.SecAggConfig, secagg.KeyAdvert, secagg.Roster, secagg.ShareKeys,
                                       secagg.ForwardedShares, secagg.MaskedInput, secagg.UnmaskRequest,
                                       secagg.UnmaskShares)}
Stage = Callable[..., Awaitable[dict]]


def to_wire(value):
    """A JSON-able form of a secagg message (bytes, uint64 arrays, sets and tuples are tagged)."""
    if is_dataclass(value):
        return {"@": type(value).__name__, **{f.name: to_wire(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, bytes):
        return {"@bytes": base64.b64encode(value).decode()}
    if isinstance(value, np.ndarray):
        return {"@u64": base64.b64encode(np.ascontiguousarray(value, dtype="<u8").tobytes()).decode()}
    if isinstance(value, frozenset):
        return {"@set": sorted(value)}
    if isinstance(value, tuple):
        return {"@tuple": [to_wire(v) for v in value]}
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


def from_wire(value):
    """Inverse of :func:`to_wire`; refuses unknown message types."""
    if isinstance(value, list):
        return [from_wire(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "@bytes" in value:
        return base64.b64decode(value["@bytes"], validate=True)
    if "@u64" in value:
        return np.frombuffer(base64.b64decode(value["@u64"], validate=True), dtype="<u8").astype(np.uint64)
    if "@set" in value:
        return frozenset(value["@set"])
    if "@tuple" in value:
        return tuple(from_wire(v) for v in value["@tuple"])
    if "@" in value:
        cls = TYPES.get(value["@"])
        if cls is None:
            raise ValueError(f"unknown secure-aggregation message type {value['@']!r}")
        return cls(**{k: from_wire(v) for k, v in value.items() if k != "@"})
    return {k: from_wire(v) for k, v in value.items()}


def round_config(n_nodes: int, n_params: int) -> SecAggConfig:
    """A FedAvg round: the update then the weight ``n``; every node masks with every other; a majority must stay."""
    return SecAggConfig(n_clients=n_nodes, threshold=n_nodes // 2 + 1, vector_length=n_params + 1,
                        clip=(UPDATE_CLIP,) * n_params + (WEIGHT_CLIP,), bits=BITS)


def moments_config(n_nodes: int, n_features: int) -> SecAggConfig:
    """Round 0, the standardisation statistics: ``n``, then the sums, then the sums of squares."""
    return SecAggConfig(n_clients=n_nodes, threshold=n_nodes // 2 + 1, vector_length=1 + 2 * n_features,
                        clip=(WEIGHT_CLIP,) + (SUM_CLIP,) * n_features + (SQUARES_CLIP,) * n_features, bits=BITS)


def subgroups_config(n_nodes: int, length: int) -> SecAggConfig:
    """After the evaluation, the subgroups' statistics (counts and sums per tenth of risk), then ``n``."""
    return SecAggConfig(n_clients=n_nodes, threshold=n_nodes // 2 + 1, vector_length=length + 1,
                        clip=(WEIGHT_CLIP,) * (length + 1), bits=BITS)


def sum_config(n_nodes: int, length: int, clip: float = SUM_CLIP) -> SecAggConfig:
    """Any vector of ``length`` values each within ``[-clip, clip]``; a majority of the nodes must stay."""
    return SecAggConfig(n_clients=n_nodes, threshold=n_nodes // 2 + 1, vector_length=length,
                        clip=(clip,) * length, bits=BITS)


def expected_config(kind: str, n_nodes: int, length: int) -> SecAggConfig:
    """The settings a node expects for a vector of ``length`` values of task ``kind``."""
    if kind == "moments":
        return moments_config(n_nodes, (length - 1) // 2)
    return subgroups_config(n_nodes, length - 1) if kind == "subgroups" else round_config(n_nodes, length - 1)


@dataclass
class SecureRun:
    """The desk's secure-aggregation state for one run: one server (public material only) per round."""

    servers: dict[int, SecAggServer]
    forwarded: dict[int, dict]


async def setup(stage: Stage, nodes: list[str], configs: dict[int, SecAggConfig]) -> tuple[SecureRun, list[str]]:
    """Two stages for the whole run: fresh keys for every round, then their sealed shares.

    Setting every round up in advance (SecAgg's offline phase) leaves two stages per round: the
    masked vector and the unmasking. ``configs`` maps each round (0: the standardisation statistics)
    to its settings. Returns the state and the nodes that took part.
    """
    rounds = sorted(configs)
    threshold = configs[rounds[0]].threshold
    payload = {"secagg": {str(r): to_wire(c) for r, c in configs.items()}, "rounds": rounds}
    replies = await stage("secagg_keys", nodes, {n: payload for n in nodes}, threshold)
    servers = {r: SecAggServer(configs[r]) for r in rounds}
    adverts = {node: read(node, reply.payload, "adverts", dict) for node, reply in replies.items()}
    rosters = {r: servers[r].collect_keys([read(node, a, str(r), secagg.KeyAdvert) for node, a in adverts.items()])
               for r in rounds}
    wired = {str(r): to_wire(roster) for r, roster in rosters.items()}
    replies = await stage("secagg_shares", list(replies), {n: {"rosters": wired} for n in replies}, threshold)
    shares = {node: read(node, reply.payload, "shares", dict) for node, reply in replies.items()}
    forwarded = {r: servers[r].route_shares([read(node, s, str(r), secagg.ShareKeys) for node, s in shares.items()])
                 for r in rounds}
    return SecureRun(servers, forwarded), sorted(replies)


async def secure_round(stage: Stage, state: SecureRun, round_number: int, nodes: list[str],
                       model: dict[str, np.ndarray], kind: str = "fit") -> tuple[np.ndarray, list[str]]:
    """One round: masked vectors, then unmasking of their sum. Returns the sum and the survivors.

    ``stage(kind, nodes, payloads, quorum, arrays=...)`` sends one task per node and returns the
    replies of the nodes that answered in time (raising if fewer than ``quorum``).
    """
    server, forwarded = state.servers.pop(round_number), state.forwarded.pop(round_number)
    threshold = server.config.threshold
    nodes = [n for n in nodes if n in forwarded]
    replies = await stage(kind, nodes, {n: {"forwarded": to_wire(forwarded[n])} for n in nodes}, threshold,
                          arrays=model)
    masked = [read(node, r.payload, "masked", secagg.MaskedInput) for node, r in replies.items()]
    request = to_wire(_checked(lambda: server.unmask_request(masked), "masked vectors"))
    unmask = await stage("secagg_unmask", list(replies), {n: {"request": request} for n in replies}, threshold)
    shares = [read(node, r.payload, "unmask", secagg.UnmaskShares) for node, r in unmask.items()]
    return _checked(lambda: server.aggregate(masked, shares), "unmasking shares"), sorted(replies)


def read(node: str, payload: object, key: str, kind: type):
    """``payload[key]`` decoded and of type ``kind``, or RunFailed naming the node (a reply is hostile input)."""
    try:
        value = from_wire(payload[key]) if isinstance(payload, dict) and key in payload else None
    except (ValueError, TypeError, KeyError):
        value = None
    if not isinstance(value, kind):
        raise RunFailed(f"node {node} sent a secure-aggregation reply without a valid {key!r} "
                        f"({kind.__name__} expected); nothing of this round was applied.")
    return value


def _checked(step, what: str):
    """Run a SecAgg server step on replies that decoded but may still be inconsistent (lengths, ids)."""
    try:
        return step()
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise RunFailed(f"secure aggregation: the nodes' {what} are inconsistent ({exc}); nothing of this round "
                        "was applied.") from None
