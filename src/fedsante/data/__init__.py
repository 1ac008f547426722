"""Data connectors and bundled real datasets (with provenance and licence)."""

from fedsante.data.heart import FEATURES, HOSPITALS, HospitalTable, load_csv, load_hospital

__all__ = ["FEATURES", "HOSPITALS", "HospitalTable", "load_csv", "load_hospital"]
