"""The audit chain: any change to any byte of a stored entry is caught and the entry is named."""

from __future__ import annotations

import json
import multiprocessing
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.audit import GENESIS, AuditLog, verify_chain, verify_file
from fedsante.audit.chain import entry_hash, make_entry, to_line
from fedsante.common.keys import public_key_b64


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(tmp_path: Path, key) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", key, "node-a")
    for i in range(5):
        log.append("dpo", f"event.{i}", "RAIH-2026-0001", {"note": "refusé : k < 11", "i": i})
    return log


def test_a_fresh_chain_verifies_and_its_head_is_the_last_entry(log: AuditLog) -> None:
    result = log.verify()
    entries = log.entries()
    assert result.ok and result.entries == 5 and result.starts_at == 0
    assert log.head() == (4, entries[-1].hash) == (result.head_seq, result.head_hash)
    assert entries[0].prev_hash == GENESIS and all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert (log.path.stat().st_mode & 0o777) == 0o600


def test_an_empty_or_missing_chain_verifies(tmp_path: Path) -> None:
    assert verify_file(tmp_path / "none.jsonl").ok
    assert verify_chain([]).head_hash == GENESIS


def test_changing_any_byte_of_an_entry_is_detected_and_the_entry_named(log: AuditLog) -> None:
    lines = log.path.read_bytes().splitlines(keepends=True)
    start = sum(len(line) for line in lines[:2])  # entry 2 is on line 3
    data = log.path.read_bytes()
    for offset in range(start, start + len(lines[2])):
        for replacement in (data[offset] ^ 0x01, ord("x") if data[offset] != ord("x") else ord("y")):
            tampered = data[:offset] + bytes([replacement]) + data[offset + 1:]
            result = verify_chain(tampered.splitlines(keepends=True))
            assert not result.ok, offset
            assert result.bad_line in (3, 4), (offset, result.reason)
            assert re.search(r"(entry 2 \(line 3\)|line 3|entry 3 \(line 4\)|line 4)", result.reason), result.reason


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda ls: ls[:2] + ls[3:], r"entry 3 \(line 3\).*follows entry 1"),
    (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], r"entry 2 \(line 2\).*follows entry 0"),
    (lambda ls: ls + [ls[-1]], r"entry 4 \(line 6\).*follows entry 4"),
    (lambda ls: ls[1:], r"entry 1 \(line 1\) .*|^$"),
])
def test_removed_moved_or_duplicated_entries_are_detected(log: AuditLog, edit, expected) -> None:
    lines = log.path.read_bytes().splitlines(keepends=True)
    result = verify_chain(edit(lines))
    if expected == r"entry 1 \(line 1\) .*|^$":  # cutting the head off looks like retention pruning ...
        assert result.ok and result.starts_at == 1  # ... which the summary reports
        assert "removed by retention" in result.summary()
        return
    assert not result.ok and re.search(expected, result.reason), result.reason


def test_a_rewritten_entry_with_a_recomputed_hash_fails_its_signature(log: AuditLog) -> None:
    lines = log.path.read_bytes().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["details"]["note"] = "nothing happened"
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    result = verify_chain(lines)
    assert not result.ok and result.bad_seq == 1 and "signature is not valid" in result.reason


def test_a_chain_rewritten_with_another_key_is_refused_when_keys_are_pinned(log: AuditLog, key, tmp_path) -> None:
    forger = Ed25519PrivateKey.generate()
    entries, prev = [], None
    for old in log.entries():
        new = make_entry(forger, prev_seq=None if prev is None else prev.seq, prev_hash=prev.hash if prev else GENESIS,
                         writer=old.writer, actor=old.actor, action=old.action, subject=old.subject,
                         details={**old.details, "note": "rewritten"})
        entries.append(new)
        prev = new
    lines = [to_line(e) for e in entries]
    assert verify_chain(lines).ok  # self-consistent ...
    result = verify_chain(lines, {public_key_b64(key)})  # ... but not signed by the writer's key
    assert not result.ok and result.bad_seq == 0 and "not among the trusted keys" in result.reason


def _append_many(path: str, n: int, seed: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    log = AuditLog(Path(path), key, f"writer-{seed}")
    for i in range(n):
        log.append("proc", "event", str(i))


def test_two_processes_appending_at_once_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_append_many, args=(str(path), 50, seed)) for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    result = verify_file(path)
    assert result.ok and result.entries == 100, result.reason


def test_retention_prunes_old_entries_and_the_chain_still_verifies(tmp_path: Path, key) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", key, "desk")
    now = datetime.now(UTC)
    for days in (800, 500, 400, 10, 1):
        log.append("system", "event", str(days), now=now - timedelta(days=days))
    removed = log.prune(365, now=now)
    entries = log.entries()
    assert removed == 3
    assert [e.subject for e in entries[:2]] == ["10", "1"]
    assert entries[-1].action == "audit.pruned" and entries[-1].details["removed"] == 3
    result = log.verify()
    assert result.ok and result.starts_at == 3 and "removed by retention" in result.summary()
    assert (log.path.stat().st_mode & 0o777) == 0o600
    assert log.prune(365, now=now) == 0


def test_cli_audit_verify_names_the_tampered_entry(log: AuditLog, key, tmp_path: Path) -> None:
    run = lambda *args: subprocess.run([sys.executable, "-m", "fedsante", "audit", "verify", *args,  # noqa: E731
                                        "--key", public_key_b64(key)], capture_output=True, text=True, timeout=60)
    ok = run(str(log.path))
    assert ok.returncode == 0 and "Chain intact: 5 entries" in " ".join(ok.stdout.split())
    data = log.path.read_bytes().replace(b'"i":3', b'"i":4', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(data)
    bad = run(str(tampered))
    assert bad.returncode == 1
    message = " ".join(bad.stderr.split())
    assert "Chain NOT intact: entry 3 (line 4): stored hash does not match its content" in message
    head = log.entries()[-1].hash
    assert run(str(log.path), "--head", head).returncode == 0
    wrong = run(str(log.path), "--head", "ab" * 32)
    assert wrong.returncode == 1 and "not an entry of this chain" in " ".join(wrong.stderr.split())
