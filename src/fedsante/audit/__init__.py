"""Tamper-evident audit trail: append-only, hash-chained, Ed25519-signed event logs and their verification.

The desk and each hospital node keep their own chain (``AuditLog``); anyone holding a copy of the file
can check it with ``verify_chain`` (or ``fedsante audit verify``), which names the first tampered entry.
"""

from fedsante.audit.chain import GENESIS, Entry, Verification, verify_chain
from fedsante.audit.log import DEFAULT_RETENTION_DAYS, AuditLog, head_of, verify_file

__all__ = ["DEFAULT_RETENTION_DAYS", "GENESIS", "AuditLog", "Entry", "Verification", "head_of", "verify_chain",
           "verify_file"]
