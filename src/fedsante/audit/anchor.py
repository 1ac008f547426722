"""Anchored verification: a chain checked against its expected signer, its genesis and its last recorded head.

``verify_chain`` alone proves that a file is *a* well-formed chain; it cannot tell a truncated tail, an
empty file, a chain re-signed end to end with another key, or a chain whose oldest entries were deleted.
Those need facts kept outside the file: the writer's public key, the hash of entry 0 (the *genesis*) and
the last head the writer recorded (``Anchor``, stored as ``audit-head.json`` next to ``audit.jsonl`` and
updated on every append). ``verify_anchored`` checks them all:

- every entry is signed by one of the expected keys (no other key, even a valid one);
- the chain is not empty once a head was recorded, and holds the recorded head (its tail was not cut);
- it starts at entry 0 whose hash is the anchored genesis, or at entry *k* > 0 only when a signed
  ``audit.pruned`` checkpoint in the chain names entry *k*-1 as the last one it removed and carries the
  anchored genesis (retention), never otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path

from fedsante.audit.chain import GENESIS, Verification, from_line, verify_chain
from fedsante.common.errors import DataError
from fedsante.common.files import replace_atomically

PRUNED = "audit.pruned"


@dataclass(frozen=True)
class Anchor:
    """What is known about a chain outside its file: its genesis and the last head recorded."""

    genesis: str | None = None
    seq: int | None = None
    hash: str | None = None

    @classmethod
    def load(cls, path: Path) -> Anchor | None:
        """The anchor stored at ``path``; ``None`` when there is none. Unreadable: ``DataError``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            anchor = cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise DataError(f"Audit head file {path} is unreadable ({exc}); keep it as evidence.") from None
        if anchor.seq is not None and (type(anchor.seq) is not int or not isinstance(anchor.hash, str)):
            raise DataError(f"Audit head file {path} is unreadable (bad seq or hash); keep it as evidence.")
        return anchor

    def save(self, path: Path) -> None:
        """Write atomically (mode 0600), fsynced."""
        replace_atomically(Path(path), json.dumps(asdict(self), sort_keys=True).encode() + b"\n")


def anchor_path(chain: Path) -> Path:
    """Where the anchor of the chain at ``chain`` is kept: ``audit.jsonl`` -> ``audit-head.json``."""
    chain = Path(chain)
    return chain.with_name(f"{chain.stem}-head.json")


def checkpoint_genesis(entries: list, first_kept: int) -> str | None:
    """The genesis a new ``audit.pruned`` checkpoint must carry when the entries before index ``first_kept`` go."""
    if entries and entries[0].seq == 0:
        return entries[0].hash
    for entry in entries:
        if entry.action == PRUNED and entry.details.get("genesis"):
            return entry.details["genesis"]
    return None


def _fail(result: Verification, reason: str) -> Verification:
    return Verification(False, result.entries, result.head_hash, result.head_seq, result.starts_at,
                        result.bad_line, result.bad_seq, reason)


def verify_anchored(lines: list[bytes], keys: Collection[str], anchor: Anchor | None = None) -> Verification:
    """``verify_chain`` with every entry signed by one of ``keys``, then the genesis and head checks of ``anchor``.

    Without ``keys`` nothing can be trusted: refused (``DataError``), since a valid signature by just any
    key proves nothing.
    """
    if not keys:
        raise DataError("An audit chain can only be verified against its writer's public key (the desk's or the "
                        "node's registered key); without it a chain re-signed with another key would pass.")
    result = verify_chain(lines, frozenset(keys))
    if not result.ok:
        if not result.entries and result.reason and "not among the trusted keys" in result.reason:
            return _fail(result, result.reason.replace("a forged entry", "the chain was re-signed with "
                                                       "another key, or replaced by someone else's"))
        return result
    anchor = anchor or Anchor()
    if not result.entries:
        if anchor.seq is not None:
            return _fail(result, f"the chain is empty, but its recorded head is entry {anchor.seq} "
                                 f"({anchor.hash[:16]}...) — the file was emptied or replaced")
        return _fail(result, "the chain is empty — there is nothing to verify (a chain holds at least its "
                             "first entry; an emptied file looks like this)")
    entries = [from_line(line) for line in lines if line.strip()]
    first = entries[0]
    if first.seq == 0:
        if anchor.genesis and first.hash != anchor.genesis:
            return _fail(result, f"entry 0 has hash {first.hash[:16]}..., not the anchored genesis "
                                 f"{anchor.genesis[:16]}... — the chain was replaced from its start")
    else:
        marks = [e for e in entries if e.action == PRUNED and e.details.get("last_removed_seq") == first.seq - 1
                 and e.details.get("last_removed_hash") == first.prev_hash]
        if not marks:
            return _fail(result, f"the chain starts at entry {first.seq}, but no signed audit.pruned checkpoint "
                                 f"records the removal of entries 0 to {first.seq - 1} — its oldest entries "
                                 "were deleted")
        if anchor.genesis and marks[-1].details.get("genesis") != anchor.genesis:
            return _fail(result, f"the audit.pruned checkpoint (entry {marks[-1].seq}) does not chain to the "
                                 f"anchored genesis {anchor.genesis[:16]}... — it belongs to another chain")
    if anchor.seq is not None:
        problem = _head_problem(entries, anchor.seq, anchor.hash)
        if problem:
            return _fail(result, problem)
    return result


def _head_problem(entries: list, seq: int, digest: str | None) -> str | None:
    """Why the chain does not hold the recorded head entry ``seq``/``digest`` (``None`` when it does)."""
    first, last = entries[0], entries[-1]
    if seq > last.seq:
        return (f"the chain ends at entry {last.seq}, but its recorded head is entry {seq} — "
                f"its last {seq - last.seq} entries were cut off (tail truncated or an old copy restored)")
    if seq < first.seq:
        return (f"the recorded head, entry {seq}, is older than the chain's first entry {first.seq}")
    entry = entries[seq - first.seq]
    if entry.hash != digest:
        return (f"entry {seq} has hash {entry.hash[:16]}..., not the recorded head {str(digest)[:16]}... — "
                "the chain was rewritten from there")
    return None


def genesis_of(lines: list[bytes]) -> str | None:
    """The genesis of a (verified) chain: entry 0's hash or its latest checkpoint's ``genesis``."""
    entries = [from_line(line) for line in lines if line.strip()]
    return checkpoint_genesis(entries, 0) if entries else None


__all__ = ["GENESIS", "Anchor", "anchor_path", "checkpoint_genesis", "genesis_of", "verify_anchored"]
