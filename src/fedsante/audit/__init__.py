"""Tamper-evident audit trail: append-only, hash-chained, Ed25519-signed event logs and their verification.

The desk and each hospital node keep their own chain (``AuditLog``); anyone holding a copy of the file
can check it with ``verify_chain``; ``verify_anchored`` (and ``fedsante audit verify``) also require the
writer's key and check the genesis and last head recorded outside the file (``audit-head.json``).
"""

from fedsante.audit.anchor import Anchor, verify_anchored
from fedsante.audit.chain import GENESIS, Entry, Verification, verify_chain
from fedsante.audit.log import DEFAULT_RETENTION_DAYS, AuditLog, head_of, verify_file

__all__ = ["DEFAULT_RETENTION_DAYS", "GENESIS", "Anchor", "AuditLog", "Entry", "Verification", "head_of",
           "verify_anchored", "verify_chain", "verify_file"]
