"""The algorithm catalogue: what a node may run, named by id, version and the hash of its code.

Entries are registered, never imported by the layers above: the built-in ones here, others by
:func:`register` or by an installed package's ``fedsante.algorithms`` entry point (an
:class:`~fedsante.algorithms.base.Algorithm` subclass or instance). A task never carries code: it names
an entry, and the node checks that the code hash in the task equals the hash of the code installed at
the hospital before running it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from fedsante import __version__
from fedsante.algorithms.base import Algorithm
from fedsante.common.errors import ConfigError, NotFound
from fedsante.federation.approval import AlgorithmRef

log = logging.getLogger("fedsante.algorithms")
ENTRY_POINT_GROUP = "fedsante.algorithms"
BUILT_IN = ("fedsante.algorithms.logreg:LogReg",)
_CATALOGUE: dict[str, Algorithm] = {}
_loaded = False


def register(algorithm: Algorithm | type[Algorithm], *, replace: bool = False) -> Algorithm:
    """Add an algorithm to the catalogue (an instance, or a class instantiated without arguments).

    >>> from fedsante.algorithms.logreg import LogReg
    >>> register(LogReg(), replace=True).id
    'logreg'
    """
    entry = algorithm() if isinstance(algorithm, type) else algorithm
    if not isinstance(entry, Algorithm):
        raise ConfigError(f"{algorithm!r} is not a fedsante Algorithm; subclass fedsante.algorithms.Algorithm.")
    if not getattr(entry, "id", "") or not entry.id.replace("_", "").isalnum() or entry.id.lower() != entry.id:
        raise ConfigError(f"Algorithm {type(entry).__name__} needs an 'id' of lowercase letters, digits and '_'.")
    _load()
    if entry.id in _CATALOGUE and not replace and type(_CATALOGUE[entry.id]) is not type(entry):
        raise ConfigError(f"An algorithm with id {entry.id!r} is already registered "
                          f"({type(_CATALOGUE[entry.id]).__module__}); choose another id.")
    _CATALOGUE[entry.id] = entry
    return entry


def unregister(algorithm_id: str) -> None:
    """Remove an entry (tests that register their own)."""
    _CATALOGUE.pop(algorithm_id, None)


def catalogue() -> dict[str, Algorithm]:
    """Every registered algorithm, by id."""
    _load()
    return dict(_CATALOGUE)


def get_algorithm(algorithm_id: str) -> Algorithm:
    """The registered algorithm ``algorithm_id``; NotFound listing the catalogue otherwise."""
    _load()
    try:
        return _CATALOGUE[algorithm_id]
    except KeyError:
        raise NotFound(
            f"Unknown algorithm {algorithm_id!r}. The catalogue of fedsante {__version__} has: "
            f"{', '.join(sorted(_CATALOGUE))}."
        ) from None


def installed() -> dict[str, AlgorithmRef]:
    """The catalogue as installed here: id -> (id, version, code hash)."""
    return {algorithm_id: algorithm.ref() for algorithm_id, algorithm in catalogue().items()}


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for spec in BUILT_IN:
        _register_spec(spec)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register(point.load())
        except (ImportError, AttributeError, ConfigError) as exc:  # a broken plug-in must not stop the others
            log.warning("algorithm entry point %s (%s) not loaded: %s", point.name, point.value, exc)


def _register_spec(spec: str) -> None:
    from importlib import import_module

    module, _, name = spec.partition(":")
    entry = getattr(import_module(module), name)
    _CATALOGUE[entry.id] = entry()
