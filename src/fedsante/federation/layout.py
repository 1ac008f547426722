"""The layout codec of flat vectors: what secure aggregation masks and sums, built and read in one place.

A :class:`Layout` names each block of a vector and its shape, in order. The node packs its arrays with
it, the desk unpacks the securely summed vector with the same layout; nothing reads a vector by
position elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import prod

import numpy as np

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    """Named blocks of a flat float64 vector, in order.

    >>> layout = Layout((("coef", (2,)), ("n", (1,))))
    >>> v = layout.pack({"coef": np.array([1.0, 2.0]), "n": np.array([5.0])})
    >>> v.tolist(), layout.size, layout.unpack(v)["n"].tolist()
    ([1.0, 2.0, 5.0], 3, [5.0])
    """

    fields: tuple[tuple[str, Shape], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"A layout names each block once. Got {names}.")
        for name, shape in self.fields:
            if not all(isinstance(k, int) and k >= 0 for k in shape):
                raise ValueError(f"Block {name!r} of a layout needs a shape of non-negative ints. Got {shape!r}.")

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], *, last: tuple[str, ...] = ()) -> Layout:
        """The layout of ``arrays`` in sorted name order, the names in ``last`` at the end in that order."""
        ordered = [k for k in sorted(arrays) if k not in last] + [k for k in last if k in arrays]
        return cls(tuple((k, tuple(int(s) for s in np.shape(arrays[k]))) for k in ordered))

    @property
    def size(self) -> int:
        return sum(prod(shape) for _, shape in self.fields)

    def pack(self, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        """The flat vector; each array must have its block's shape (and no array may be left over)."""
        extra = sorted(set(arrays) - {name for name, _ in self.fields})
        if extra:
            raise ValueError(f"Arrays {extra} are not part of the layout {[n for n, _ in self.fields]}.")
        parts = []
        for name, shape in self.fields:
            if name not in arrays:
                raise ValueError(f"The layout needs array {name!r} of shape {list(shape)}; it is missing.")
            value = np.asarray(arrays[name], dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"Array {name!r} has shape {list(value.shape)}; the layout expects {list(shape)}.")
            parts.append(value.ravel())
        return np.concatenate(parts) if parts else np.zeros(0)

    def unpack(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """The named arrays of a vector of exactly :attr:`size` values."""
        vector = np.asarray(vector, dtype=np.float64)
        if vector.ndim != 1 or vector.size != self.size:
            raise ValueError(f"A vector of this layout has {self.size} values. Got shape {list(vector.shape)}.")
        out, start = {}, 0
        for name, shape in self.fields:
            size = prod(shape)
            out[name] = vector[start:start + size].reshape(shape).copy()
            start += size
        return out
