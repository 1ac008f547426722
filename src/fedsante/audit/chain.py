"""Hash-chained, signed audit entries and their verification. Pure: no file I/O.

Each entry holds the hash of the previous one, the SHA-256 of its own content and an Ed25519
signature of that hash by the writer's key. Entries are stored as canonical JSON lines, so changing
any byte of a stored entry breaks its form, its hash, its signature or the next entry's link.

>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.generate()
>>> first = make_entry(key, prev_seq=None, prev_hash=GENESIS, writer="desk", actor="system",
...                    action="audit.started", subject="desk", details={}, now=datetime(2026, 11, 25, 10, tzinfo=UTC))
>>> first.seq, first.time
(0, '2026-11-25T10:00:00Z')
>>> second = make_entry(key, prev_seq=first.seq, prev_hash=first.hash, writer="desk", actor="admin",
...                     action="project.submitted", subject="RAIH-2026-0001", details={"note": "déposé"})
>>> verify_chain([to_line(first), to_line(second)]).ok
True
>>> verify_chain([to_line(second)]).starts_at  # earlier entries pruned by retention
1
>>> print(verify_chain([to_line(first), to_line(second).replace(b"RAIH", b"RAIX")]).reason)
entry 1 (line 2): stored hash does not match its content — the entry was changed after it was written
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.common.errors import DataError
from fedsante.common.keys import canonical_json, public_key_b64, sha256_hex, sign, verify

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    """One audit event as stored (one canonical JSON line)."""

    seq: int
    time: str
    writer: str
    actor: str
    action: str
    subject: str
    details: dict
    prev_hash: str
    signer: str
    hash: str
    signature: str


FIELDS = tuple(f.name for f in fields(Entry))
_UNSIGNED = ("hash", "signature")


def utc(moment: datetime | None = None) -> datetime:
    """``moment`` (default: now) as an aware UTC datetime; a naive datetime is taken to be UTC."""
    moment = moment or datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with seconds precision: ``2026-11-25T10:00:00Z``."""
    return utc(moment).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_hash(content: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of every field except ``hash`` and ``signature``."""
    return sha256_hex(canonical_json({k: v for k, v in content.items() if k not in _UNSIGNED}))


def make_entry(key: Ed25519PrivateKey, *, prev_seq: int | None, prev_hash: str, writer: str, actor: str,
               action: str, subject: str, details: dict | None, now: datetime | None = None) -> Entry:
    """The entry following ``prev_seq``/``prev_hash`` (``None``/``GENESIS`` for the first), signed by ``key``."""
    details = {} if details is None else details
    if not isinstance(details, dict):
        raise DataError(f"Audit details must be a JSON object, got {type(details).__name__}.")
    content = {"seq": 0 if prev_seq is None else prev_seq + 1, "time": iso(utc(now)), "writer": writer,
               "actor": actor, "action": action, "subject": subject, "details": details,
               "prev_hash": prev_hash, "signer": public_key_b64(key)}
    try:
        digest = entry_hash(content)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Audit details of {action!r} are not JSON-serialisable ({exc}).") from None
    # Store the details as they round-trip through JSON (tuples become lists...), so entries() equals what was written.
    content["details"] = json.loads(canonical_json(details))
    return Entry(**content, hash=digest, signature=sign(key, digest.encode("ascii")))


def to_line(entry: Entry) -> bytes:
    """The stored form: canonical JSON of every field, then a newline."""
    return canonical_json(asdict(entry)) + b"\n"


def from_line(line: bytes) -> Entry:
    """Parse one stored line (no checks beyond the field names); raises ``ValueError`` when unreadable."""
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        raise ValueError(f"not an audit entry (expected exactly the fields {', '.join(FIELDS)})")
    if not _typed(data):
        raise ValueError("an audit entry field has the wrong type")
    return Entry(**data)


def _typed(data: dict) -> bool:
    """True when ``seq`` is an int, ``details`` an object and every other field a string."""
    return type(data["seq"]) is int and isinstance(data["details"], dict) and all(
        isinstance(data[k], str) for k in FIELDS if k not in ("seq", "details"))


@dataclass
class Verification:
    """Outcome of checking a chain. On failure, ``entries``/``head_*`` describe the good part before it."""

    ok: bool
    entries: int
    head_hash: str
    head_seq: int | None
    starts_at: int | None
    bad_line: int | None = None
    bad_seq: int | None = None
    reason: str | None = None

    def summary(self) -> str:
        """One sentence for a human."""
        if not self.ok:
            before = f"; the {self.entries} entries before it are intact" if self.entries else ""
            return f"Chain NOT intact: {self.reason}{before}."
        if not self.entries:
            return "Chain intact: it is empty (no entries yet)."
        pruned = (f"; entries before {self.starts_at} are not in it (removed by retention or left out of an export)"
                  if self.starts_at else "")
        return (f"Chain intact: {self.entries} entries ({self.starts_at} to {self.head_seq}{pruned}), every line, "
                f"link, hash and signature checked; head {self.head_hash[:16]}...")


def _strict_b64(text: str, size: int) -> bool:
    """True when ``text`` is the one canonical base64 spelling of ``size`` bytes (unused bits zero)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == size and base64.b64encode(raw).decode("ascii") == text


def _read(line: bytes) -> tuple[dict | None, str | None]:
    """The line's JSON object and the first problem with its form (``None`` when well formed)."""
    body = line[:-1] if line.endswith(b"\n") else line
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "is not valid UTF-8 — the line was damaged or edited"
    except (ValueError, RecursionError):
        return None, "is not valid JSON — the line was damaged, cut or merged with another one"
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        return None, f"is not an audit entry (it must have exactly the fields {', '.join(FIELDS)})"
    if not _typed(data):
        return data, "has a field of the wrong type — the entry was edited"
    try:
        canonical = canonical_json(data) + b"\n"
    except ValueError:
        canonical = b""
    if not line.endswith(b"\n") and canonical == line + b"\n":
        return data, "does not end with a newline — the file was cut off or an append was interrupted"
    if canonical != line:
        return data, "is not in canonical form — its bytes were edited after it was written"
    return data, None


def _problem(data: dict, prev: dict | None, trusted: Collection[str] | None) -> str | None:
    """The first problem with a well-formed entry given the previous one (``None`` when fine)."""
    seq = data["seq"]
    if prev is None:
        if seq < 0:
            return "has a negative sequence number"
        if seq == 0 and data["prev_hash"] != GENESIS:
            return "is entry 0 but does not start from the genesis hash — the chain was replaced"
    else:
        if seq != prev["seq"] + 1:
            return (f"follows entry {prev['seq']} but is not entry {prev['seq'] + 1} — "
                    "an entry was removed, duplicated or moved")
        if data["prev_hash"] != prev["hash"]:
            return f"does not link to entry {prev['seq']} — an entry was replaced or the chain re-spliced"
    if entry_hash(data) != data["hash"]:
        return "stored hash does not match its content — the entry was changed after it was written"
    if not _strict_b64(data["signer"], 32):
        return "names a signer that is not a base64 Ed25519 public key"
    if not _strict_b64(data["signature"], 64) or not verify(data["signer"], data["hash"].encode(), data["signature"]):
        return ("signature is not valid for its signer key — the entry was forged or changed "
                "without the writer's private key")
    if trusted is not None and data["signer"] not in trusted:
        return f"is signed by key {data['signer']}, which is not among the trusted keys — a forged entry"
    return None


def verify_chain(lines: Iterable[bytes], trusted_keys: Collection[str] | None = None) -> Verification:
    """Check a chain given as its stored lines, each with its ``b"\\n"`` (iterate a file opened ``"rb"``).

    Checks, per line: UTF-8 JSON object with exactly the entry fields, byte-identical to its canonical
    form, consecutive ``seq``, link to the previous hash (entry 0 links to ``GENESIS``; a first entry
    with ``seq`` > 0 is a chain pruned by retention), hash, signature, and trusted signer when
    ``trusted_keys`` is given. Stops at the first problem. One empty line at the very end is allowed.
    """
    trusted = None if trusted_keys is None else frozenset(trusted_keys)
    prev: dict | None = None
    first: int | None = None
    count = 0
    blank: int | None = None

    def fail(number: int, seq: int | None, problem: str) -> Verification:
        name = f"entry {seq} (line {number})" if seq is not None else (
            f"line {number} (after entry {prev['seq']})" if prev else f"line {number}")
        return Verification(False, count, prev["hash"] if prev else GENESIS, prev["seq"] if prev else None,
                            first, number, seq, f"{name}: {problem}")

    for number, line in enumerate(lines, start=1):
        if blank is not None:
            return fail(blank, None, "is empty — a blank line in the middle of the chain (an entry was blanked out)")
        if line in (b"", b"\n"):
            blank = number
            continue
        data, problem = _read(line)
        seq = data["seq"] if data is not None and type(data["seq"]) is int else None
        problem = problem or _problem(data, prev, trusted)
        if problem:
            return fail(number, seq, problem)
        first = data["seq"] if first is None else first
        prev = data
        count += 1
    return Verification(True, count, prev["hash"] if prev else GENESIS, prev["seq"] if prev else None, first)
