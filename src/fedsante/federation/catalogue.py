"""The algorithm catalogue: what a node may run, named by id, version and the hash of its code.

A task never carries code. It names an entry of this catalogue, and the node checks that the code
hash in the task equals the hash of the code installed at the hospital before running it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from pathlib import Path

from fedsante import __version__
from fedsante.common.errors import NotFound
from fedsante.federation.messages import AlgorithmRef


@dataclass(frozen=True)
class Algorithm:
    id: str
    description: str
    modules: tuple[str, ...]

    @property
    def version(self) -> str:
        return __version__

    def ref(self) -> AlgorithmRef:
        return AlgorithmRef(id=self.id, version=self.version, code_hash=code_hash(self.modules))


@cache
def code_hash(modules: tuple[str, ...]) -> str:
    """SHA-256 over the source files of ``modules`` (module name, then bytes, in the given order)."""
    digest = hashlib.sha256()
    for name in modules:
        source = Path(import_module(name).__file__ or "")
        digest.update(name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


CATALOGUE = {
    algorithm.id: algorithm
    for algorithm in (
        Algorithm(
            id="logreg",
            description="Logistic regression trained by DP-SGD at each node, FedAvg under secure aggregation.",
            modules=(
                "fedsante.learning.logistic",
                "fedsante.learning.scaling",
                "fedsante.reports.metrics",
                "fedsante.federation.params",
                "fedsante.node.executor",
                "fedsante.privacy.dp",
                "fedsante.privacy.membership",
                "fedsante.reports.performance",
            ),
        ),
    )
}


def get_algorithm(algorithm_id: str) -> Algorithm:
    try:
        return CATALOGUE[algorithm_id]
    except KeyError:
        raise NotFound(
            f"Unknown algorithm {algorithm_id!r}. The catalogue of fedsante {__version__} has: "
            f"{', '.join(sorted(CATALOGUE))}."
        ) from None
