"""Chains checked against their writer's key, their anchored genesis and their last recorded head."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fedsante.audit import AuditLog
from fedsante.audit.anchor import Anchor, verify_anchored
from fedsante.audit.chain import make_entry, to_line
from fedsante.audit.log import read_lines
from fedsante.common.errors import DataError
from fedsante.common.keys import public_key_b64
from fedsante.node.ledger import PrivacyLedger, debit

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def log(tmp_path: Path, key) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", key, "node-a")
    for i in range(6):
        log.append("dpo", f"event.{i}", "RAIH-2026-0001", {"i": i}, now=T0 + timedelta(days=100 * i))
    return log


def check(log: AuditLog, lines: list[bytes] | None = None, keys: set[str] | None = None):
    lines = read_lines(log.path) if lines is None else lines
    return verify_anchored(lines, keys or {public_key_b64(log.key)}, log.anchor())


def cli(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedsante", "audit", "verify", str(path), *args],
                          capture_output=True, text=True, timeout=60)


def test_the_anchor_follows_every_append(log: AuditLog) -> None:
    anchor, entries = log.anchor(), log.entries()
    assert (anchor.genesis, anchor.seq, anchor.hash) == (entries[0].hash, 5, entries[-1].hash)
    assert check(log).ok and log.anchor_path.name == "audit-head.json"


def test_a_truncated_tail_fails_against_the_recorded_head(log: AuditLog) -> None:
    result = check(log, read_lines(log.path)[:-2])
    assert not result.ok and "ends at entry 3, but its recorded head is entry 5" in result.reason
    assert "cut off" in result.reason
    copy = log.path.with_name("copy.jsonl")
    copy.write_bytes(b"".join(read_lines(log.path)[:-2]))
    done = cli(copy, "--key", public_key_b64(log.key), "--anchor", str(log.anchor_path))
    assert done.returncode == 1 and "but its recorded head is entry 5" in " ".join(done.stderr.split())
    assert cli(log.path, "--key", public_key_b64(log.key)).returncode == 0  # the recorded head next to it
    with pytest.raises(DataError, match="does not end at or after its recorded head"):
        log.path.write_bytes(b"".join(read_lines(log.path)[:-2]))
        log.append("dpo", "event.new", "x")  # a writer does not extend a truncated chain either


def test_an_empty_file_fails(log: AuditLog, tmp_path: Path) -> None:
    result = check(log, [])
    assert not result.ok and "the chain is empty, but its recorded head is entry 5" in result.reason
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    done = cli(empty, "--key", public_key_b64(log.key))
    assert done.returncode == 1 and "the chain is empty" in " ".join(done.stderr.split())


def test_entries_appended_under_another_key_fail(log: AuditLog) -> None:
    other, last = Ed25519PrivateKey.generate(), log.entries()[-1]
    forged = make_entry(other, prev_seq=last.seq, prev_hash=last.hash, writer="node-a", actor="x",
                        action="task.executed", subject="r", details={})
    result = check(log, read_lines(log.path) + [to_line(forged)])
    assert not result.ok and result.bad_seq == 6 and f"is signed by key {public_key_b64(other)}" in result.reason


def test_a_fully_re_signed_chain_fails(log: AuditLog) -> None:
    other, lines, prev = Ed25519PrivateKey.generate(), [], None
    for entry in log.entries():
        prev = make_entry(other, prev_seq=prev.seq if prev else None, prev_hash=prev.hash if prev else "0" * 64,
                          writer=entry.writer, actor=entry.actor, action=entry.action, subject=entry.subject,
                          details=entry.details)
        lines.append(to_line(prev))
    result = check(log, lines)
    assert not result.ok and result.bad_seq == 0 and "the chain was re-signed" in result.reason
    forged = log.path.with_name("forged.jsonl")
    forged.write_bytes(b"".join(lines))
    without_key = cli(forged)
    assert without_key.returncode == 1 and "--key" in without_key.stderr  # the signer must be named
    done = cli(forged, "--key", public_key_b64(log.key))
    assert done.returncode == 1 and "re-signed" in " ".join(done.stderr.split())


def test_deleted_oldest_entries_fail_even_without_a_recorded_head(log: AuditLog) -> None:
    lines = read_lines(log.path)[2:]
    result = verify_anchored(lines, {public_key_b64(log.key)})
    assert not result.ok and "no signed audit.pruned checkpoint" in result.reason
    assert "its oldest entries were deleted" in result.reason
    log.path.write_bytes(b"".join(lines))
    done = cli(log.path, "--key", public_key_b64(log.key))
    assert done.returncode == 1 and "oldest entries were deleted" in " ".join(done.stderr.split())


def test_retention_is_a_signed_checkpoint_chained_to_the_genesis(log: AuditLog) -> None:
    assert log.prune(365, now=T0 + timedelta(days=600)) == 3
    result = check(log)
    assert result.ok and result.starts_at == 3, result.reason
    assert log.anchor().genesis == log.entries()[-1].details["genesis"]
    assert cli(log.path, "--key", public_key_b64(log.key)).returncode == 0
    # deleting one more old entry is not retention: the checkpoint names entry 2 as the last removed
    result = check(log, read_lines(log.path)[1:])
    assert not result.ok and "no signed audit.pruned checkpoint records the removal of entries 0 to 3" in result.reason
    # a checkpoint that does not carry the anchored genesis belongs to another chain
    foreign = Anchor("f" * 64, log.anchor().seq, log.anchor().hash)
    result = verify_anchored(read_lines(log.path), {public_key_b64(log.key)}, foreign)
    assert not result.ok and "does not chain to the anchored genesis" in result.reason


def test_node_start_up_refuses_a_chain_whose_oldest_lines_were_deleted(tmp_path: Path, key) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", key, "va")
    for run in range(9):
        audit.append("node", "task.executed", f"run{run}", {"privacy_debit": debit(
            dataset="va", project="P", run=f"run{run}", kind="fit", round_number=0, epsilon=0.8, run_epsilon=0.8,
            delta=1e-6, mechanism="gaussian")})
    assert PrivacyLedger(audit).spent("va") == pytest.approx(7.2)
    audit.path.write_bytes(b"".join(read_lines(audit.path)[5:]))
    with pytest.raises(DataError, match="oldest entries were deleted"):
        PrivacyLedger(audit)
    audit.anchor_path.unlink()  # without the recorded head too, a chain not starting at entry 0 is refused
    with pytest.raises(DataError, match="oldest entries were deleted"):
        PrivacyLedger(audit)


def test_start_up_adopts_a_chain_written_before_anchors(tmp_path: Path, key) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", key, "va")
    audit.append("node", "policy.created", "va")
    audit.anchor_path.unlink()
    PrivacyLedger(audit)
    assert audit.anchor().genesis == audit.entries()[0].hash


def test_the_desk_does_not_start_on_a_chain_cut_at_either_end(tmp_path: Path) -> None:
    from fedsante.desk.app import create_app
    from fedsante.desk.settings import DeskSettings
    from fastapi.testclient import TestClient

    settings = DeskSettings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'desk.db'}")
    with TestClient(create_app(settings, admin_token="t")) as client:
        for i in range(3):
            client.app.state.desk.record("admin", "test.event", str(i))
    desk_log = settings.audit_path
    lines = read_lines(desk_log)
    assert len(lines) >= 2
    for cut in (lines[:-1], lines[1:], []):
        desk_log.write_bytes(b"".join(cut))
        with pytest.raises(DataError, match="not intact, so it was not pruned"):
            with TestClient(create_app(settings, admin_token="t")):
                pass


def test_the_published_head_is_the_recorded_one_not_the_files(log: AuditLog) -> None:
    recorded = log.head()
    log.path.write_bytes(b"".join(read_lines(log.path)[:-3]))  # truncated: the head published does not follow
    assert log.head() == recorded == (5, log.anchor().hash)
