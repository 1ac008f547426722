"""Secure aggregation carried by the federation protocol: wire format and the desk's four stages.

A secure FedAvg round is four task stages: ``secagg_keys`` (each node advertises two X25519 keys),
``secagg_shares`` (each node seals Shamir shares of its secrets for the others; the desk forwards the
ciphertexts), ``fit`` (each node sends its masked update, with its weight ``n`` as the last
coordinate) and ``secagg_unmask`` (survivors reveal what the desk needs to remove the masks from the
*sum*). The desk never holds an individual update. The cryptography is in
:mod:`fedsante.privacy.secagg`; this module only moves its messages.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import fields, is_dataclass

import numpy as np

from fedsante.privacy import secagg
from fedsante.privacy.secagg import SecAggConfig, SecAggServer

BITS = 53  # every residue and every sum is exact in float64
UPDATE_CLIP = 1e5  # |n * (local - global)| per coordinate; a node refuses an update beyond it
WEIGHT_CLIP = 1e7  # the node's number of training patients
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
    """The round's settings: every node masks with every other; a majority of them must stay."""
    return SecAggConfig(n_clients=n_nodes, threshold=n_nodes // 2 + 1, vector_length=n_params + 1,
                        clip=(UPDATE_CLIP,) * n_params + (WEIGHT_CLIP,), bits=BITS)


async def secure_sum(stage: Stage, nodes: list[str], round_number: int, model: dict[str, np.ndarray],
                     names: list[str]) -> tuple[np.ndarray, float, list[str]]:
    """Run the four stages; return the summed update (flattened in ``names`` order), total weight, survivors.

    ``stage(kind, nodes, payloads, arrays, quorum)`` sends one task per node and returns the replies
    of the nodes that answered in time (raising if fewer than ``quorum``).
    """
    n_params = sum(model[k].size for k in names)
    config = round_config(len(nodes), n_params)
    server = SecAggServer(config)
    replies = await stage("secagg_keys", nodes, {n: {"secagg": to_wire(config)} for n in nodes}, {}, config.threshold)
    roster = server.collect_keys([from_wire(r.payload["advert"]) for r in replies.values()])
    wired = to_wire(roster)
    replies = await stage("secagg_shares", list(replies), {n: {"roster": wired} for n in replies}, {}, config.threshold)
    forwarded = server.route_shares([from_wire(r.payload["shares"]) for r in replies.values()])
    replies = await stage("fit", list(replies), {n: {"forwarded": to_wire(forwarded[n])} for n in replies}, model,
                          config.threshold)
    masked = [from_wire(r.payload["masked"]) for r in replies.values()]
    request = to_wire(server.unmask_request(masked))
    unmask = await stage("secagg_unmask", list(replies), {n: {"request": request} for n in replies}, {},
                         config.threshold)
    total = server.aggregate(masked, [from_wire(r.payload["unmask"]) for r in unmask.values()])
    return total[:-1], float(round(total[-1])), sorted(replies)  # the weight is a sum of patient counts
