"""The audit chain: appends verify, every tampering is caught and located, concurrent writers, retention."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import stat
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.audit import AuditLog, Verification, verify_chain
from fedsante.audit.chain import GENESIS, Entry, entry_hash, make_entry, to_line
from fedsante.audit.log import head_of, split_lines, verify_file
from fedsante.common.errors import DataError
from fedsante.common.keys import public_key_b64

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def fill(log: AuditLog, count: int = 4, *, start: datetime = T0, step: timedelta = timedelta(hours=1)) -> list[Entry]:
    return [log.append("dpo.region" if i % 2 else "va", "task.refused" if i % 2 else "project.submitted",
                       f"RAIH-2026-{i:04d}", {"motif": "refusé par le comité d'éthique", "round": i, "ok": i % 2 == 0},
                       now=start + i * step) for i in range(count)]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(tmp_path: Path, key: Ed25519PrivateKey) -> AuditLog:
    return AuditLog(tmp_path / "node" / "audit.jsonl", key, "va")


def lines_of(log: AuditLog) -> list[bytes]:
    return split_lines(log.path.read_bytes())


def check(lines: list[bytes], **kw) -> Verification:
    return verify_chain(lines, **kw)


def test_append_verify_and_head(log: AuditLog, key: Ed25519PrivateKey) -> None:
    written = fill(log)
    result = log.verify(trusted_keys={public_key_b64(key)})
    assert result.ok and result.entries == 4 and result.starts_at == 0 and result.bad_line is None
    assert (result.head_seq, result.head_hash) == log.head() == (3, written[-1].hash)
    assert log.entries() == written
    assert [e.seq for e in written] == [0, 1, 2, 3] and written[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(written, written[1:]))
    assert written[1].time == "2026-11-25T11:00:00Z" and written[1].writer == "va"
    assert "refusé".encode() in log.path.read_bytes()  # stored as UTF-8, not \u escapes
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert "4 entries" in result.summary() and head_of(log.path, 3, written[-1].hash)
    assert entry_hash(asdict(written[2])) == written[2].hash


def test_empty_and_missing_files_verify(log: AuditLog) -> None:
    assert log.entries() == [] and log.head() == (None, GENESIS)
    missing = log.verify()
    assert missing.ok and missing.entries == 0 and missing.head_hash == GENESIS and missing.starts_at is None
    log.path.parent.mkdir(parents=True)
    log.path.write_bytes(b"")
    assert log.verify().ok and log.verify().entries == 0 and "empty" in log.verify().summary()


def test_every_byte_change_of_a_middle_entry_is_caught(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 3)
    original = log.path.read_bytes()
    lines = split_lines(original)
    begin, end = len(lines[0]), len(lines[0]) + len(lines[1])  # entry 1, line 2, with its newline
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(original)
    fd = os.open(copy, os.O_WRONLY)
    tried = 0
    try:
        for offset in range(begin, end):
            old = original[offset]
            for new in {old ^ 0x01, old ^ 0x02, old ^ 0x20, ord("A") if old != ord("A") else ord("B"),
                        ord(" "), ord("\n")} - {old}:
                os.pwrite(fd, bytes([new]), offset)  # the copy now differs from the original in this byte only
                result = verify_file(copy)
                os.pwrite(fd, bytes([old]), offset)
                tried += 1
                assert not result.ok, f"byte {offset - begin} of entry 1 changed {old:#x} -> {new:#x} went unnoticed"
                assert result.bad_line == 2 and "line 2" in result.reason, (offset - begin, new, result.reason)
                assert result.entries == 1 and result.head_seq == 0
    finally:
        os.close(fd)
    assert tried > 4 * (end - begin) and verify_file(copy).ok


def test_signature_with_unused_base64_bits_set_is_rejected(log: AuditLog) -> None:
    fill(log, 3)
    lines = lines_of(log)
    entry = json.loads(lines[1])
    raw = base64.b64decode(entry["signature"])
    last = entry["signature"][-3]  # 64 bytes -> 86 characters + "==": the 86th carries 2 bits and 4 unused ones
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) | 0b0001]
    assert twin != last and base64.b64decode(entry["signature"][:-3] + twin + "==") == raw  # same bytes
    lines[1] = lines[1].replace(entry["signature"].encode(), (entry["signature"][:-3] + twin + "==").encode())
    result = check(lines)
    assert not result.ok and result.bad_line == 2 and result.bad_seq == 1 and "signature" in result.reason


def test_removed_swapped_truncated_and_blank_lines(log: AuditLog) -> None:
    fill(log, 5)
    lines = lines_of(log)
    removed = check(lines[:2] + lines[3:])
    assert (removed.ok, removed.bad_line, removed.bad_seq) == (False, 3, 3) and "entry 2" in removed.reason
    swapped = check([lines[0], lines[2], lines[1], *lines[3:]])
    assert (swapped.ok, swapped.bad_line, swapped.bad_seq) == (False, 2, 2)
    for cut in (1, 2, 40, len(lines[4]) - 1):
        truncated = check(lines[:4] + [lines[4][:-cut]])
        assert (truncated.ok, truncated.bad_line, truncated.entries) == (False, 5, 4), truncated.reason
    assert "newline" in check(lines[:4] + [lines[4][:-1]]).reason
    blank = check(lines[:2] + [b"\n"] + lines[2:])
    assert (blank.ok, blank.bad_line) == (False, 3) and "empty" in blank.reason
    assert check(lines + [b"\n"]).ok and check(lines + [b""]).ok  # a trailing empty line is fine
    assert not check(lines + [b"\n", b"\n"]).ok
    spaced = check([lines[0], lines[1].replace(b'","', b'", "', 1), *lines[2:]])
    assert (spaced.ok, spaced.bad_seq) == (False, 1) and "canonical" in spaced.reason
    assert not check([lines[0].replace(b'"prev_hash":"' + GENESIS.encode(), b'"prev_hash":"' + b"1" * 64)]).ok


def test_forged_entries(log: AuditLog, key: Ed25519PrivateKey) -> None:
    written = fill(log, 3)
    lines = lines_of(log)
    mallory = Ed25519PrivateKey.generate()
    trusted = {public_key_b64(key)}
    # A well-formed entry appended by another key: valid signature, but not a trusted signer.
    forged = make_entry(mallory, prev_seq=2, prev_hash=written[2].hash, writer="va", actor="va",
                        action="task.executed", subject="run9", details={}, now=T0)
    assert check(lines + [to_line(forged)]).ok
    untrusted = check(lines + [to_line(forged)], trusted_keys=trusted)
    assert (untrusted.ok, untrusted.bad_line, untrusted.bad_seq) == (False, 4, 3)
    assert public_key_b64(mallory) in untrusted.reason and "trusted" in untrusted.reason
    # Inserted in the middle: the next entry no longer links.
    inserted = make_entry(mallory, prev_seq=0, prev_hash=written[0].hash, writer="va", actor="va",
                          action="task.executed", subject="run9", details={}, now=T0)
    assert check([lines[0], to_line(inserted), *lines[1:]]).bad_line == 3
    # Re-chained after an edit (hashes recomputed) but keeping the writer's signatures: signature fails.
    edited = replace(written[1], details={"motif": "accepté"})
    edited = replace(edited, hash=entry_hash(asdict(edited)))
    rechained = replace(written[2], prev_hash=edited.hash)
    rechained = replace(rechained, hash=entry_hash(asdict(rechained)))
    result = check([lines[0], to_line(edited), to_line(rechained)])
    assert (result.ok, result.bad_line, result.bad_seq) == (False, 2, 1) and "signature" in result.reason
    # ... and re-signed by another key: passes only without trusted keys.
    first = make_entry(mallory, prev_seq=0, prev_hash=written[0].hash, writer="va", actor=written[1].actor,
                       action=written[1].action, subject=written[1].subject, details={"motif": "accepté"}, now=T0)
    second = make_entry(mallory, prev_seq=1, prev_hash=first.hash, writer="va", actor=written[2].actor,
                        action=written[2].action, subject=written[2].subject, details=written[2].details, now=T0)
    forged_lines = [lines[0], to_line(first), to_line(second)]
    assert check(forged_lines).ok
    assert check(forged_lines, trusted_keys=trusted).bad_line == 2


def test_changed_details_with_recomputed_hash_fails_on_signature(log: AuditLog) -> None:
    fill(log, 3)
    lines = lines_of(log)
    data = json.loads(lines[1])
    data["details"]["motif"] = "accepté"
    data["hash"] = entry_hash(data)
    result = check([lines[0], to_line(Entry(**data)), lines[2]])
    assert (result.ok, result.bad_line, result.bad_seq) == (False, 2, 1) and "signature" in result.reason
    assert result.reason.startswith("entry 1 (line 2):") and "entry 1 (line 2)" in result.summary()


def test_append_refuses_a_damaged_last_line(log: AuditLog) -> None:
    fill(log, 2)
    good = log.path.read_bytes()
    log.path.write_bytes(good[:-10])
    with pytest.raises(DataError, match="fedsante audit verify"):
        log.append("va", "task.executed", "run1")
    log.path.write_bytes(good + b"{not json}\n")
    with pytest.raises(DataError, match=str(log.path)):
        log.append("va", "task.executed", "run1")
    assert log.path.read_bytes() == good + b"{not json}\n"  # nothing was written
    log.path.write_bytes(good + b"\n")  # a trailing empty line is dropped, not left mid-chain
    log.append("va", "task.executed", "run1")
    assert log.verify().ok and log.verify().entries == 3


def _append_many(path: str, pem: bytes, worker: int, count: int) -> None:
    key = serialization.load_pem_private_key(pem, password=None)
    log = AuditLog(Path(path), key, "va")
    for i in range(count):
        log.append(f"worker{worker}", "task.executed", f"run{worker}-{i}", {"i": i})


def test_two_processes_append_concurrently(log: AuditLog, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    workers = [context.Process(target=_append_many, args=(str(log.path), pem, w, 50)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    result = log.verify(trusted_keys={public_key_b64(key)})
    assert result.ok and result.entries == 100 and result.head_seq == 99, result.reason
    assert sorted(e.subject for e in log.entries()) == sorted(f"run{w}-{i}" for w in range(2) for i in range(50))


def test_prune_keeps_recent_entries(log: AuditLog, key: Ed25519PrivateKey) -> None:
    written = fill(log, 10, start=T0, step=timedelta(days=50))  # days 0, 50, ..., 450
    now = T0 + timedelta(days=460)
    assert log.prune(365, now=now) == 2  # days 0 and 50 are older than 365 days
    result = log.verify(trusted_keys={public_key_b64(key)})
    assert result.ok and result.starts_at == 2 and result.entries == 9 and result.head_seq == 10, result.reason
    marker = log.entries()[-1]
    assert (marker.action, marker.actor, marker.seq) == ("audit.pruned", "system", 10)
    assert marker.details == {"removed": 2, "retention_days": 365, "last_removed_seq": 1,
                              "last_removed_hash": written[1].hash, "genesis": written[0].hash}
    assert log.entries()[0].prev_hash == written[1].hash
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert log.prune(365, now=now) == 0  # nothing more to remove
    assert log.append("va", "task.executed", "run2").seq == 11 and log.verify().ok
    assert sorted(p.name for p in log.path.parent.iterdir()) == ["audit-head.json", "audit.jsonl"]  # no temp file left


def test_prune_never_removes_the_last_entry_and_refuses_a_tampered_chain(log: AuditLog) -> None:
    fill(log, 3)
    assert log.prune(1, now=T0 + timedelta(days=900)) == 2
    assert [e.seq for e in log.entries()] == [2, 3] and log.verify().ok
    tampered = log.path.read_bytes().replace(b"system", b"sysTem", 1)
    log.path.write_bytes(tampered)
    with pytest.raises(DataError, match="not intact"):
        log.prune(1, now=T0 + timedelta(days=2000))
    assert log.path.read_bytes() == tampered


def test_export_since_is_a_verifiable_chain(log: AuditLog, tmp_path: Path) -> None:
    fill(log, 5, step=timedelta(days=1))
    dest = tmp_path / "out" / "export.jsonl"
    assert log.export(dest, since=T0 + timedelta(days=2)) == 3
    result = verify_file(dest)
    assert result.ok and result.starts_at == 2 and result.head_seq == 4
    assert log.export(dest) == 5 and dest.read_bytes() == log.path.read_bytes()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_removing_the_last_entries_is_caught_by_the_published_head(log: AuditLog) -> None:
    written = fill(log, 4)
    log.path.write_bytes(b"".join(lines_of(log)[:3]))
    assert log.verify().ok  # a shortened chain is still a chain...
    assert not head_of(log.path, written[-1].seq, written[-1].hash)  # ...but not the head the desk published


def test_appends_during_prunes_are_not_lost(log: AuditLog, key: Ed25519PrivateKey) -> None:
    """A writer waiting for the lock while the file is replaced re-opens it instead of writing to the old one."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    log.append("va", "audit.started", "va", now=T0)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    writer = context.Process(target=_append_many, args=(str(log.path), pem, 0, 60))
    writer.start()
    prunes = 0
    while writer.is_alive() or prunes == 0:
        prunes += log.prune(1, now=datetime.now(UTC) + timedelta(days=30)) > 0
    writer.join(60)
    assert writer.exitcode == 0
    result = log.verify()
    assert result.ok, result.reason
    assert result.head_seq == 60 + prunes  # 1 + 60 appends + one "audit.pruned" per prune, none lost
    assert result.starts_at > 0 and log.entries()[-1].action in ("audit.pruned", "task.executed")
