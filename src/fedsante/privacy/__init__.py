"""Privacy: secure aggregation, differential privacy, disclosure control and the privacy-budget ledger.

Pure functions and small classes over bytes and numpy arrays; no I/O and no network.
"""
