"""The algorithm catalogue: plug-ins registered by id (see :mod:`fedsante.algorithms.base` for the interface)."""

from fedsante.algorithms.base import Algorithm, AlgorithmParams, code_hash
from fedsante.algorithms.catalogue import catalogue, get_algorithm, installed, register, unregister

__all__ = ["Algorithm", "AlgorithmParams", "catalogue", "code_hash", "get_algorithm", "installed", "register",
           "unregister"]
