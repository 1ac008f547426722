"""Fixed-point encoding of float updates as integers modulo ``M = 2**bits`` for secure aggregation.

Secure aggregation adds integers modulo ``M``; it must never wrap, or the sum is garbage. The rule:

* each client clips its values to ``[-clip, clip]`` and encodes them as signed integers in
  ``[-h, h]`` with ``h = (M - 1) // (2 * n_clients)``, stored modulo ``M``;
* the sum of up to ``n_clients`` encodings lies in ``[-n_clients * h, n_clients * h]``, an interval
  of fewer than ``M`` integers, so the centred residue of the modular sum *is* the integer sum,
  whatever the signs and whichever clients drop out;
* the step is ``step = clip / h`` (``clip`` may also be an array, one bound per coordinate).

Error bound: round-to-nearest is off by at most ``step / 2`` per client and coordinate, so the
dequantised sum of ``k <= n_clients`` clients is within ``k * step / 2`` of the sum of the *clipped*
values (within ``k * step`` with stochastic rounding, which is unbiased). With 32 bits and 4 clients
``h = 536_870_911``: the whole sum is within ``4e-9 * clip`` of the truth. ``bits`` is capped at 53
so that every encoded integer and every sum is exact in float64.

>>> import numpy as np
>>> parts = [quantize(np.array([0.5, -0.25]), clip=1.0, bits=32, n_clients=3) for _ in range(3)]
>>> np.round(dequantize(np.sum(parts, axis=0), clip=1.0, bits=32, n_clients=3), 6)
array([ 1.5 , -0.75])
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_BITS", "dequantize", "levels", "quantize", "step"]
MAX_BITS = 53


def levels(bits: int, n_clients: int) -> int:
    """Largest magnitude ``h`` one client may encode so that ``n_clients`` encodings never wrap."""
    if not 8 <= bits <= MAX_BITS:
        raise ValueError(f"The field width 'bits' must be an integer in [8, {MAX_BITS}]. Got {bits!r}.")
    if n_clients < 1:
        raise ValueError(f"'n_clients' must be an integer >= 1. Got {n_clients!r}.")
    return (2**bits - 1) // (2 * n_clients)


def _bound(clip: float | np.ndarray) -> np.ndarray:
    c = np.asarray(clip, dtype=np.float64)
    if not (np.all(np.isfinite(c)) and np.all(c > 0)):
        raise ValueError(f"The clipping bound 'clip' must be finite and > 0. Got {clip!r}.")
    return c


def step(clip: float | np.ndarray, bits: int, n_clients: int) -> np.ndarray:
    """Value of one quantisation level: the resolution of the encoding."""
    return _bound(clip) / levels(bits, n_clients)


def quantize(
    x: np.ndarray,
    clip: float | np.ndarray,
    bits: int,
    n_clients: int,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Clip ``x`` to ``[-clip, clip]`` and encode it as ``uint64`` residues modulo ``2**bits``.

    Rounds to nearest, or stochastically (unbiased) when a numpy Generator ``rng`` is given.
    """
    values = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("Cannot quantise an update that holds NaN or infinite values.")
    c, h = _bound(clip), levels(bits, n_clients)
    scaled = np.clip(values, -c, c) * (h / c)
    if rng is None:
        ints = np.rint(scaled)
    else:
        low = np.floor(scaled)
        ints = low + (rng.random(scaled.shape) < scaled - low)
    ints = np.clip(ints, -h, h).astype(np.int64)
    return ints.view(np.uint64) & np.uint64(2**bits - 1)


def dequantize(sum_ints: np.ndarray, clip: float | np.ndarray, bits: int, n_clients: int) -> np.ndarray:
    """Float64 value of a sum of at most ``n_clients`` encodings, given as integers modulo ``2**bits``."""
    s = np.asarray(sum_ints)
    if s.dtype.kind not in "iu":
        raise TypeError(f"dequantize needs an integer array of residues. Got dtype {s.dtype}.")
    c, h = _bound(clip), levels(bits, n_clients)
    residues = (s.astype(np.int64).view(np.uint64) if s.dtype.kind == "i" else s.astype(np.uint64))
    shift = 64 - bits
    centred = (residues << np.uint64(shift)).view(np.int64) >> np.int64(shift)
    return centred.astype(np.float64) * (c / h)
