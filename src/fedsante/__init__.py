"""fedsante: a regional trusted space for governed federated AI on health data."""

__version__ = "0.1.0"
