"""fedsante.privacy: fixed-point quantisation and the SecAgg+ protocol (pure, in memory)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.stats import chisquare

from fedsante.common.errors import ConfigError, RunFailed
from fedsante.privacy.quantize import dequantize, levels, quantize, step
from fedsante.privacy.secagg import (
    ForwardedShares, SecAggClient, SecAggConfig, SecAggServer, UnmaskRequest, UnmaskShares, secagg_round_cost,
    simulate_round,
)

HOSPITALS = ("cleveland", "hungarian", "switzerland", "va")
M32 = 2**32


def heart_updates(dim: int = 14, seed: int = 0) -> dict[str, np.ndarray]:
    """Realistic node updates ``n * (local - global)``: Fed-Heart-Disease sizes, small local steps."""
    gen = np.random.default_rng(seed)
    sizes = dict(zip(HOSPITALS, (303, 261, 46, 130), strict=True))
    return {h: n * gen.normal(0.0, 0.05, dim) for h, n in sizes.items()}


def config_for(updates: dict[str, np.ndarray], threshold: int = 3, **kw) -> SecAggConfig:
    """Clip chosen from the data range, as the federation layer will from the clipping policy."""
    clip = float(np.max(np.abs(np.stack(list(updates.values())))))
    dim = len(next(iter(updates.values())))
    return SecAggConfig(n_clients=kw.pop("n_clients", len(updates)), threshold=threshold, vector_length=dim,
                        clip=clip, **kw)


@dataclasses.dataclass
class Round:
    """A round driven stage by stage, keeping every message so tests can inspect or tamper with them."""

    config: SecAggConfig
    updates: dict[str, np.ndarray]
    clients: dict[str, SecAggClient] = dataclasses.field(init=False)
    server: SecAggServer = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.clients = {h: SecAggClient(h, self.config) for h in self.updates}
        self.server = SecAggServer(self.config)
        self.roster = self.server.collect_keys([c.advertise_keys() for c in self.clients.values()])

    def share(self, drop: set[str] = frozenset()) -> dict[str, ForwardedShares]:
        return self.server.route_shares([c.share_keys(self.roster) for h, c in self.clients.items() if h not in drop])

    def mask(self, routed: dict[str, ForwardedShares], drop: set[str] = frozenset()):
        masked = [self.clients[h].masked_input(self.updates[h], fw) for h, fw in routed.items() if h not in drop]
        return masked, self.server.unmask_request(masked)

    def unmask(self, request: UnmaskRequest, drop: set[str] = frozenset()) -> list[UnmaskShares]:
        return [self.clients[h].unmask(request) for h in sorted(request.survivors - drop)]


def quantized_sum(updates: dict[str, np.ndarray], config: SecAggConfig, ids) -> np.ndarray:
    q = [quantize(updates[h], config.clip, config.bits, config.n_clients) for h in ids]
    return np.sum(q, axis=0, dtype=np.uint64) & np.uint64(2**config.bits - 1)


def arrays_in(obj, seen: set[int] | None = None) -> Iterator[np.ndarray]:
    """Every numpy array reachable from ``obj`` through attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from arrays_in(k, seen)
            yield from arrays_in(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            yield from arrays_in(v, seen)
    elif hasattr(obj, "__dict__"):
        yield from arrays_in(vars(obj), seen)


# --- quantisation --------------------------------------------------------------------------------------

def test_sum_of_extremes_never_wraps():
    for bits, n in [(8, 3), (16, 7), (32, 4), (53, 1000)]:
        for sign in (-1.0, 1.0):
            parts = [quantize(np.full(3, sign * 2.0), clip=2.0, bits=bits, n_clients=n) for _ in range(n)]
            total = dequantize(np.sum(parts, axis=0, dtype=np.uint64), clip=2.0, bits=bits, n_clients=n)
            np.testing.assert_allclose(total, sign * 2.0 * n, rtol=1e-12)
    assert levels(32, 4) == 536_870_911


def test_quantisation_error_within_bound_and_tiny_relative():
    gen = np.random.default_rng(1)
    xs = [gen.normal(0, 3.0, 1_000) for _ in range(4)]
    clip = max(np.abs(x).max() for x in xs)
    total = dequantize(np.sum([quantize(x, clip, 32, 4) for x in xs], axis=0, dtype=np.uint64), clip, 32, 4)
    error = np.abs(total - np.sum(xs, axis=0))
    assert error.max() <= 4 * step(clip, 32, 4) / 2 + 1e-12
    assert error.max() / np.abs(np.sum(xs, axis=0)).max() < 1e-6


def test_stochastic_rounding_is_unbiased_and_within_one_step():
    gen = np.random.default_rng(2)
    x, clip, bits = np.full(20_000, 0.3), 1.0, 8
    q = dequantize(quantize(x, clip, bits, 2, rng=gen), clip, bits, 2)
    s = float(step(clip, bits, 2))
    assert np.all(np.abs(q - x) < s) and len(np.unique(q)) == 2
    assert abs(q.mean() - 0.3) < s / 20
    np.testing.assert_array_equal(quantize(x, clip, bits, 2, rng=np.random.default_rng(3)),
                                  quantize(x, clip, bits, 2, rng=np.random.default_rng(3)))


def test_clipping_and_bad_arguments():
    assert dequantize(quantize(np.array([5.0, -5.0]), 1.0, 32, 2), 1.0, 32, 2).tolist() == [1.0, -1.0]
    np.testing.assert_allclose(dequantize(np.array([-3], dtype=np.int64), 1.0, 16, 2), -3 / levels(16, 2))
    with pytest.raises(ValueError, match="bits"):
        quantize(np.zeros(2), 1.0, 64, 2)
    with pytest.raises(ValueError, match="NaN"):
        quantize(np.array([np.nan]), 1.0, 32, 2)
    with pytest.raises(ValueError, match="clip"):
        quantize(np.zeros(2), 0.0, 32, 2)
    with pytest.raises(TypeError, match="integer"):
        dequantize(np.zeros(2), 1.0, 32, 2)


# --- secure aggregation: correctness -----------------------------------------------------------------

@pytest.mark.parametrize("dim", [14, 1_000])
def test_masked_aggregate_equals_plain_sum(dim):
    updates = heart_updates(dim)
    config = config_for(updates)
    r = Round(config, updates)
    masked, request = r.mask(r.share())
    responses = r.unmask(request)
    ints = r.server.aggregate_ints(masked, responses)
    np.testing.assert_array_equal(ints, quantized_sum(updates, config, HOSPITALS))
    plain = np.sum(list(updates.values()), axis=0)
    total = r.server.aggregate(masked, responses)
    assert np.abs(total - plain).max() / np.abs(plain).max() < 1e-6
    assert np.abs(total - plain).max() <= 4 * config.clip / levels(32, 4) / 2 + 1e-12


def test_dropout_after_sharing_keys_within_threshold():
    updates = heart_updates()
    config = config_for(updates)
    r = Round(config, updates)
    masked, request = r.mask(r.share(), drop={"va"})
    assert request == UnmaskRequest(frozenset(HOSPITALS) - {"va"}, frozenset({"va"}))
    responses = r.unmask(request)
    assert set(responses[0].sk_shares) == {"va"} and "va" not in responses[0].b_shares
    survivors = HOSPITALS[:3]
    np.testing.assert_array_equal(r.server.aggregate_ints(masked, responses), quantized_sum(updates, config, survivors))
    np.testing.assert_allclose(r.server.aggregate(masked, responses), sum(updates[h] for h in survivors), atol=1e-6)


def test_dropouts_at_every_stage():
    updates = {**heart_updates(50, seed=3), "toulouse": np.linspace(-1.0, 1.0, 50)}
    config = config_for(updates, threshold=3)
    plain = sum(v for h, v in updates.items() if h != "va")
    np.testing.assert_allclose(simulate_round(config, updates, {"masked_input": ["va"], "unmask": ["cleveland"]}),
                               plain, atol=1e-6)
    np.testing.assert_allclose(simulate_round(config, updates, {"unmask": ["va"]}), sum(updates.values()), atol=1e-6)
    np.testing.assert_allclose(simulate_round(config, updates, {"share_keys": ["va"]}), plain, atol=1e-6)


def test_secagg_plus_neighbourhoods_with_dropouts():
    gen = np.random.default_rng(4)
    updates = {f"node-{i}": gen.uniform(-1, 1, 40) for i in range(10)}
    config = SecAggConfig(n_clients=10, threshold=3, vector_length=40, clip=1.0, neighbours=4)
    r = Round(config, updates)
    assert all(len(peers) == 4 for peers in r.roster.graph.values())
    routed = r.share()
    assert all(len(fw.ciphertexts) == 4 for fw in routed.values())
    masked, request = r.mask(routed, drop={"node-3"})
    total = r.server.aggregate(masked, r.unmask(request, drop={"node-7"}))
    np.testing.assert_allclose(total, sum(v for k, v in updates.items() if k != "node-3"), atol=1e-6)


def test_weight_rides_along_with_its_own_clip():
    updates = heart_updates()
    sizes = {"cleveland": 303.0, "hungarian": 261.0, "switzerland": 46.0, "va": 130.0}
    vectors = {h: np.append(u, sizes[h]) for h, u in updates.items()}
    bound = float(np.max(np.abs(np.stack(list(updates.values())))))
    config = SecAggConfig(n_clients=4, threshold=3, vector_length=15, clip=(bound,) * 14 + (1_000.0,))
    total = simulate_round(config, vectors, {"masked_input": ["switzerland"]})
    assert abs(total[-1] - 694.0) < 1e-5
    np.testing.assert_allclose(total[:-1], sum(updates[h] for h in sizes if h != "switzerland"), atol=1e-6)
    with pytest.raises(ConfigError, match="one per coordinate"):
        SecAggConfig(n_clients=4, threshold=3, vector_length=15, clip=(1.0, 2.0))


def test_seeded_random_rounds_match_plain_sums():
    gen = np.random.default_rng(5)
    for _ in range(6):
        n = int(gen.integers(3, 9))
        k = None if gen.random() < 0.5 else 2 * int(gen.integers(1, n // 2 + 1))
        holders = n if k is None else min(k + 1, n)
        config = SecAggConfig(n, holders // 2 + 1, 30, clip=2.0, bits=int(gen.choice([24, 32, 48])), neighbours=k)
        updates = {f"h{i}": gen.uniform(-2, 2, 30) for i in range(n)}
        drop = [] if gen.random() < 0.5 else [f"h{int(gen.integers(n))}"]
        try:
            total = simulate_round(config, updates, {"masked_input": drop})
        except RunFailed as exc:  # a ring may be cut or a neighbourhood fall below threshold: a clean refusal
            assert "nothing was aggregated" in str(exc)
            continue
        bound = n * config.clip / levels(config.bits, n) / 2 + 1e-12
        assert np.abs(total - sum(v for h, v in updates.items() if h not in drop)).max() <= bound


# --- secure aggregation: failures --------------------------------------------------------------------

def test_dropout_beyond_threshold_fails_cleanly():
    updates = heart_updates()
    r = Round(config_for(updates), updates)
    routed = r.share()
    message = "round failed: 2 of 4 nodes remain, the secure aggregation threshold is 3; nothing was aggregated"
    with pytest.raises(RunFailed, match=message):
        r.mask(routed, drop={"va", "hungarian"})
    assert r.server.survivors == frozenset()
    with pytest.raises(RunFailed, match="2 of 4 nodes remain"):
        simulate_round(config_for(updates), updates, {"share_keys": ["va", "switzerland"]})
    with pytest.raises(RunFailed, match="2 of 4 nodes remain"):
        simulate_round(config_for(updates), updates, {"unmask": ["va", "switzerland"]})
    with pytest.raises(RunFailed, match="2 of 4 nodes remain"):
        SecAggServer(config_for(updates)).collect_keys([SecAggClient(h, config_for(updates)).advertise_keys()
                                                        for h in HOSPITALS[:2]])


def test_cut_ring_is_refused_by_desk_and_by_clients():
    updates = {f"node-{i}": np.full(5, 0.1 * i) for i in range(8)}
    config = SecAggConfig(n_clients=8, threshold=2, vector_length=5, clip=1.0, neighbours=2)
    r = Round(config, updates)
    routed = r.share()
    isolated = "node-0"
    with pytest.raises(RunFailed, match="connected mask graph"):
        r.mask(routed, drop=set(r.roster.graph[isolated]))
    survivors = frozenset(updates) - r.roster.graph[isolated]
    request = UnmaskRequest(survivors, frozenset(r.roster.graph[isolated]))
    with pytest.raises(RunFailed, match="refuses to unmask.*connected"):
        r.clients[isolated].unmask(request)


def test_tampered_ciphertext_names_the_sender():
    updates = heart_updates()
    r = Round(config_for(updates), updates)
    routed = r.share()
    blob = bytearray(routed["cleveland"].ciphertexts["hungarian"])
    blob[20] ^= 1
    tampered = ForwardedShares("cleveland", {**routed["cleveland"].ciphertexts, "hungarian": bytes(blob)})
    with pytest.raises(RunFailed, match="from client 'hungarian' to 'cleveland' failed authentication"):
        r.clients["cleveland"].masked_input(updates["cleveland"], tampered)
    with pytest.raises(RunFailed, match="out of order or twice"):
        r.clients["hungarian"].masked_input(updates["hungarian"], routed["cleveland"])
    swapped = ForwardedShares("cleveland", {**routed["cleveland"].ciphertexts,
                                            "hungarian": routed["switzerland"].ciphertexts["hungarian"]})
    with pytest.raises(RunFailed, match="from client 'hungarian'"):
        r.clients["cleveland"].masked_input(updates["cleveland"], swapped)


def test_altered_key_share_is_detected():
    updates = heart_updates()
    r = Round(config_for(updates), updates)
    masked, request = r.mask(r.share(), drop={"va"})
    responses = r.unmask(request)
    index, share = responses[0].sk_shares["va"]
    responses[0] = dataclasses.replace(responses[0], sk_shares={"va": (index, bytes(32 - len(share)) + share[::-1])})
    with pytest.raises(RunFailed, match="masking key rebuilt for client 'va' does not match"):
        r.server.aggregate(masked, responses)


def test_client_refuses_to_reveal_both_secrets_of_one_client():
    updates = heart_updates()
    r = Round(config_for(updates), updates)
    masked, request = r.mask(r.share())
    client = r.clients["cleveland"]
    with pytest.raises(RunFailed, match=r"refuses to unmask: \['va'\] listed as both surviving and dropped"):
        client.unmask(UnmaskRequest(frozenset(HOSPITALS), frozenset({"va"})))
    with pytest.raises(RunFailed, match="not listed as a survivor"):
        client.unmask(UnmaskRequest(frozenset(HOSPITALS[1:]), frozenset({"cleveland"})))
    with pytest.raises(RunFailed, match="twice"):
        client.masked_input(np.zeros(14), ForwardedShares("cleveland", {}))
    first = client.unmask(request)
    assert "va" in first.b_shares
    with pytest.raises(RunFailed, match=r"\['va'\] were already unmasked the other way"):
        client.unmask(UnmaskRequest(frozenset(HOSPITALS[:3]), frozenset({"va"})))


def test_configuration_is_checked():
    with pytest.raises(ConfigError, match="majority"):
        SecAggConfig(n_clients=4, threshold=2, vector_length=3, clip=1.0)
    with pytest.raises(ConfigError, match="neighbours"):
        SecAggConfig(n_clients=6, threshold=3, vector_length=3, clip=1.0, neighbours=3)
    with pytest.raises(ConfigError, match="bits"):
        SecAggConfig(n_clients=4, threshold=3, vector_length=3, clip=1.0, bits=64)
    config = SecAggConfig(n_clients=2, threshold=2, vector_length=3, clip=1.0)
    with pytest.raises(RunFailed, match="at most 2 distinct clients"):
        SecAggServer(config).collect_keys([SecAggClient(h, config).advertise_keys() for h in "abc"])


# --- secure aggregation: what the desk sees ----------------------------------------------------------

def test_masked_input_looks_uniform():
    dim, config = 20_000, SecAggConfig(n_clients=4, threshold=3, vector_length=20_000, clip=1.0)
    updates = {h: np.full(dim, 0.25) for h in HOSPITALS}
    r = Round(config, updates)
    masked, _ = r.mask(r.share())
    quantized = quantize(updates["cleveland"], 1.0, 32, 4)
    vector = masked[0].vector
    assert np.mean(vector != quantized) > 0.999
    assert not np.array_equal(masked[0].vector, masked[1].vector)
    counts = np.bincount((vector >> np.uint64(28)).astype(np.int64), minlength=16)
    assert chisquare(counts).pvalue > 1e-6
    assert abs(vector.astype(np.float64).mean() / M32 - 0.5) < 0.01


def test_desk_never_holds_an_individual_update():
    updates = heart_updates(1_000, seed=6)
    config = config_for(updates)
    r = Round(config, updates)
    routed = r.share()
    assert all(len(blob) == 12 + 48 + 16 for fw in routed.values() for blob in fw.ciphertexts.values())
    masked, request = r.mask(routed, drop={"va"})
    total = r.server.aggregate(masked, r.unmask(request))
    individual = [quantize(v, config.clip, config.bits, config.n_clients) for v in updates.values()]
    individual += list(updates.values())
    held = list(arrays_in(r.server))
    assert not any(np.array_equal(a, b) for a in held for b in individual)
    assert not any(np.array_equal(m.vector, q) for m in masked for q in individual)
    assert set(vars(r.server)) == {"config", "roster", "shared", "survivors"}
    assert np.abs(total - sum(updates[h] for h in HOSPITALS[:3])).max() < 1e-6


def test_round_cost_helper():
    seconds = secagg_round_cost(4, 14)
    assert isinstance(seconds, float) and seconds > 0
    assert secagg_round_cost(6, 100, neighbours=2) > 0
