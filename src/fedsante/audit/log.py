"""The append-only audit log file (JSON lines, mode 0600), shared safely by several processes.

Writers take an exclusive ``flock`` on the file for each append (and a thread lock within a process);
readers take a shared one while they copy the bytes. Pruning rewrites the file atomically (temporary
file + ``os.replace``); a writer that was waiting on the replaced file notices and re-opens the path.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.audit.anchor import Anchor, anchor_path, checkpoint_genesis, verify_anchored
from fedsante.audit.chain import GENESIS, Entry, Verification, from_line, make_entry, to_line, utc, verify_chain
from fedsante.common.errors import ConfigError, DataError
from fedsante.common.files import replace_atomically, write_all
from fedsante.common.keys import public_key_b64

DEFAULT_RETENTION_DAYS = 365
_BLOCK = 4096
_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    """One lock per file for all ``AuditLog`` objects of this process."""
    with _thread_locks_guard:
        return _thread_locks.setdefault(path.resolve(), threading.Lock())


def split_lines(data: bytes) -> list[bytes]:
    """``data`` cut after each ``b"\\n"`` (only there), each line keeping its newline."""
    parts = data.split(b"\n")
    return [part + b"\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def read_lines(path: Path) -> list[bytes]:
    """The stored lines of the log at ``path``, read under a shared lock (a missing file has none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return split_lines(_read_all(fd))
    finally:
        os.close(fd)


def verify_file(path: Path, trusted_keys: Collection[str] | None = None) -> Verification:
    """Verify the chain stored in ``path`` (a missing file is an empty chain)."""
    return verify_chain(read_lines(Path(path)), trusted_keys)


def head_of(path: Path, seq: int | None, digest: str | None) -> bool:
    """True when the chain in ``path`` holds entry ``seq`` with hash ``digest`` (e.g. a head the desk published)."""
    if seq is None or not digest:
        return False
    for line in read_lines(Path(path)):
        try:
            entry = from_line(line)
        except ValueError:
            continue
        if entry.seq == seq:
            return entry.hash == digest
    return False


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, min(1 << 20, size - offset), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _damaged(path: Path, what: str) -> DataError:
    return DataError(f"Audit log {path} {what}; nothing was written. Check it with 'fedsante audit verify {path}' "
                     "and keep the file as evidence.")


def _tail(fd: int, path: Path) -> tuple[Entry | None, bool]:
    """The last entry (read backwards from the end, not the whole file) and whether a blank line follows it."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    block, start, buf = _BLOCK, size, b""
    while True:
        new_start = max(0, start - block)
        buf = os.pread(fd, start - new_start, new_start) + buf
        start, block = new_start, block * 4
        if not buf.endswith(b"\n"):
            raise _damaged(path, "ends with an incomplete line (cut off or an interrupted write)")
        body, blank = buf[:-1], False
        if body.endswith(b"\n") or (not body and start == 0):
            body, blank = body[:-1], True
        if body.endswith(b"\n"):
            raise _damaged(path, "ends with several empty lines")
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            break
    if not body:
        return None, blank
    try:
        return from_line(body[cut + 1:]), blank
    except ValueError as exc:
        raise _damaged(path, f"has an unreadable last line ({exc})") from None


@contextmanager
def _exclusive(path: Path) -> Iterator[int]:
    """A descriptor of the file at ``path`` (created 0600 if missing) under an exclusive ``flock``.

    If the file was replaced (pruned) while we waited for the lock, re-open the path and lock again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) != (current.st_dev, current.st_ino):
                continue
            try:
                yield fd
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            return
        finally:
            os.close(fd)


def _parses(line: bytes) -> bool:
    try:
        from_line(line)
    except ValueError:
        return False
    return True


def _written_at(entry: Entry) -> datetime | None:
    try:
        return utc(datetime.fromisoformat(entry.time))
    except ValueError:
        return None


class AuditLog:
    """One writer's chain in one file, signed with that writer's key.

    >>> import tempfile
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> log = AuditLog(Path(tempfile.mkdtemp()) / "audit.jsonl", Ed25519PrivateKey.generate(), "desk")
    >>> log.append("admin", "project.submitted", "RAIH-2026-0001", {"note": "dossier déposé"}).seq
    0
    >>> log.head()[0], log.verify().ok, oct(log.path.stat().st_mode & 0o777)
    (0, True, '0o600')
    """

    def __init__(self, path: Path, key: Ed25519PrivateKey, writer: str) -> None:
        self.path = Path(path)
        self.key = key
        self.writer = writer
        self.anchor_path = anchor_path(self.path)  # genesis and last head, kept outside the chain's file
        self._lock = _thread_lock(self.path)

    def anchor(self) -> Anchor | None:
        """The genesis and last head recorded outside the file (``None`` before the first append)."""
        return Anchor.load(self.anchor_path)

    def _record_head(self, entry: Entry, genesis: str | None) -> None:
        self.anchor_path.parent.mkdir(parents=True, exist_ok=True)
        Anchor(genesis, entry.seq, entry.hash).save(self.anchor_path)

    def verify_anchored(self) -> Verification:
        """Verify against this writer's own key, its anchored genesis and its last recorded head."""
        return verify_anchored(read_lines(self.path), {public_key_b64(self.key)}, self.anchor())

    def adopt(self) -> Verification:
        """Check the chain against its key and anchor; when it verifies and no anchor was kept yet (a chain
        written before anchors existed, still starting at entry 0), record one. Raises ``DataError`` otherwise."""
        with self._lock, _exclusive(self.path) as fd:
            lines = split_lines(_read_all(fd))
            anchor = Anchor.load(self.anchor_path)
            if anchor is None and not any(line.strip() for line in lines):
                return verify_chain([])
            result = verify_anchored(lines, {public_key_b64(self.key)}, anchor)
            if not result.ok:
                raise DataError(f"Audit chain {self.path} does not verify against this writer's key and its recorded "
                                f"head ({self.anchor_path}): {result.reason}. Nothing was started; keep both files "
                                f"as evidence and check them with 'fedsante audit verify {self.path} --key "
                                f"{public_key_b64(self.key)} --anchor {self.anchor_path}'.")
            if anchor is None or anchor.genesis is None:
                # (a chain pruned before checkpoints carried the genesis keeps none: its signed checkpoint,
                # checked above, still proves which entries retention removed)
                entries = [from_line(line) for line in lines if line.strip()]
                self._record_head(entries[-1], checkpoint_genesis(entries, 0))
            return result

    def append(self, actor: str, action: str, subject: str, details: dict | None = None, *,
               now: datetime | None = None) -> Entry:
        """Sign and append one event after the current last entry; durable (fsynced) when this returns."""
        with self._lock, _exclusive(self.path) as fd:
            last, blank = _tail(fd, self.path)
            anchor = Anchor.load(self.anchor_path)
            if anchor is not None and anchor.seq is not None and (
                    last is None or last.seq < anchor.seq or (last.seq == anchor.seq and last.hash != anchor.hash)):
                raise _damaged(self.path, f"does not end at or after its recorded head, entry {anchor.seq} "
                                          f"({self.anchor_path}): it was truncated or replaced")
            entry = make_entry(self.key, prev_seq=last.seq if last else None, prev_hash=last.hash if last else GENESIS,
                               writer=self.writer, actor=actor, action=action, subject=subject, details=details,
                               now=now)
            if blank:  # an empty line after the last entry (an editor's): drop it, or it would sit mid-chain
                os.ftruncate(fd, os.fstat(fd).st_size - 1)
            write_all(fd, to_line(entry))
            genesis = anchor.genesis if anchor is not None else (entry.hash if entry.seq == 0 else None)
            self._record_head(entry, genesis)
        return entry

    def head(self) -> tuple[int | None, str]:
        """Sequence number and hash of the last entry, as recorded outside the file (``audit-head.json``, what the
        desk publishes: never read back from the file it is checked against); from the file's last entry when
        no head was recorded yet; ``(None, GENESIS)`` for an empty or missing log."""
        anchor = Anchor.load(self.anchor_path)
        if anchor is not None and anchor.seq is not None:
            return anchor.seq, anchor.hash
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, GENESIS
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            last, _ = _tail(fd, self.path)
        finally:
            os.close(fd)
        return (last.seq, last.hash) if last else (None, GENESIS)

    def entries(self) -> list[Entry]:
        """Every entry, parsed but not verified (use ``verify``); a missing file has none."""
        result = []
        for number, line in enumerate(read_lines(self.path), start=1):
            if line.strip():
                try:
                    result.append(from_line(line))
                except ValueError as exc:
                    raise DataError(f"Audit log {self.path}, line {number}, is unreadable ({exc}); "
                                    f"check it with 'fedsante audit verify {self.path}'.") from None
        return result

    def verify(self, trusted_keys: Collection[str] | None = None) -> Verification:
        """Check every line, link, hash and signature (and the signers, given ``trusted_keys``)."""
        return verify_file(self.path, trusted_keys)

    def iter_lines(self, *, since: datetime | None = None) -> Iterator[bytes]:
        """The stored lines, byte for byte, for export (e.g. to an auditor, who checks them with ``verify_chain``).

        With ``since``, start at the first entry written at or after it (or at the first unreadable line, so
        that damage is never left out); the rest follows unfiltered, so the export is a valid pruned chain.
        """
        lines = read_lines(self.path)
        start = 0
        if since is not None:
            since = utc(since)
            while start < len(lines):
                try:
                    moment = _written_at(from_line(lines[start]))
                except ValueError:
                    break
                if moment is None or moment >= since:
                    break
                start += 1
        yield from lines[start:]

    def export(self, dest: Path, *, since: datetime | None = None) -> int:
        """Write ``iter_lines(since=since)`` to ``dest`` (atomically, mode 0600); return the number of lines."""
        lines = list(self.iter_lines(since=since))
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(Path(dest), b"".join(lines))
        return sum(1 for line in lines if line.strip())

    def prune(self, retention_days: int = DEFAULT_RETENTION_DAYS, *, now: datetime | None = None,
              carry: Callable[[list[Entry]], dict] | None = None) -> int:
        """Remove the entries older than ``retention_days`` (never the last one), then log "audit.pruned".

        ``carry`` summarises the removed entries into the marker's ``carried`` details, for balances
        that must outlive retention (the node's privacy ledger).

        Refuses (``DataError``) to prune a chain that does not verify, so as not to destroy evidence.
        Returns the number of entries removed.
        """
        if retention_days < 1:
            raise ConfigError(f"Audit retention must be at least 1 day, got {retention_days}.")
        now = utc(now)
        cutoff = now - timedelta(days=retention_days)
        with self._lock, _exclusive(self.path) as fd:
            lines = split_lines(_read_all(fd))
            anchor = Anchor.load(self.anchor_path)
            if not any(line.strip() for line in lines) and (anchor is None or anchor.seq is None):
                return 0  # nothing written yet
            # Its signers may include the writer's retired keys (the desk rotates its key): the anchor's genesis
            # and recorded head still catch a chain replaced, truncated or cut at its start.
            signers = {public_key_b64(self.key)} | {from_line(line).signer for line in lines if line.strip()
                                                    if _parses(line)}
            check = verify_anchored(lines, signers, anchor)
            if not check.ok:
                raise _damaged(self.path, f"is not intact, so it was not pruned: {check.reason}")
            if lines and lines[-1] == b"\n":
                lines.pop()
            entries = [from_line(line) for line in lines]
            removed = 0
            while removed < len(entries) - 1 and (moment := _written_at(entries[removed])) and moment < cutoff:
                removed += 1
            if not removed:
                return 0
            gone, last = entries[removed - 1], entries[-1]
            details = {"removed": removed, "retention_days": retention_days,
                       "last_removed_seq": gone.seq, "last_removed_hash": gone.hash,
                       "genesis": checkpoint_genesis(entries, removed)}
            if carry is not None:
                details["carried"] = carry(entries[:removed])
            marker = make_entry(self.key, prev_seq=last.seq, prev_hash=last.hash, writer=self.writer, actor="system",
                                action="audit.pruned", subject=self.writer, now=now, details=details)
            replace_atomically(self.path, b"".join(lines[removed:]) + to_line(marker))
            self._record_head(marker, anchor.genesis if anchor and anchor.genesis else details["genesis"])
        return removed
