"""Sealed identifiers and keyed hashes: only the hospital opens them, and a tampered one is refused."""

from __future__ import annotations

import base64

import pytest
from nacl.public import PrivateKey

from fedsante.common.errors import ConfigError, DataError
from fedsante.privacy.objections import (generate_box_key, keyed_hash, load_box_key, load_hash_key, new_receipt,
                                         normalise, public_b64, receipt_id, seal, unseal)


def test_only_the_hospitals_key_opens_a_sealed_identifier() -> None:
    hospital, other = PrivateKey.generate(), PrivateKey.generate()
    sealed = seal(public_b64(hospital), " Q4ZK7M2TXB5HWR3NJ6PA ")
    assert "Q4ZK7M2TXB5HWR3NJ6PA" not in sealed and unseal(hospital, sealed) == "Q4ZK7M2TXB5HWR3NJ6PA"
    assert seal(public_b64(hospital), "Q4ZK7M2TXB5HWR3NJ6PA") != sealed  # an ephemeral key per seal: no linkage
    with pytest.raises(DataError, match="could not be opened"):
        unseal(other, sealed)
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    with pytest.raises(DataError, match="altered"):
        unseal(hospital, base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("identifier", ["", "   ", "x" * 101, "a\nb", "\x00"])
def test_bad_identifiers_are_refused(identifier: str) -> None:
    with pytest.raises(DataError, match="printable"):
        normalise(identifier)


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_bad_public_keys_are_refused(key: str) -> None:
    with pytest.raises(DataError, match="objection public key"):
        seal(key, "p1")


def test_keyed_hashes_depend_on_the_nodes_secret(tmp_path) -> None:
    secret = load_hash_key(tmp_path / "hash")
    assert load_hash_key(tmp_path / "hash") == secret and len(secret) == 32
    assert (tmp_path / "hash").stat().st_mode & 0o777 == 0o600
    assert keyed_hash(secret, "p1") == keyed_hash(secret, "p1 ") != keyed_hash(b"x" * 32, "p1")


def test_box_keys_are_written_once_and_private(tmp_path) -> None:
    key = generate_box_key(tmp_path / "box")
    assert bytes(load_box_key(tmp_path / "box")) == bytes(key)
    assert (tmp_path / "box").stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        generate_box_key(tmp_path / "box")
    (tmp_path / "bad").write_text("nope")
    with pytest.raises(ConfigError, match="not a base64 X25519 key"):
        load_box_key(tmp_path / "bad")
    with pytest.raises(ConfigError, match="missing"):
        load_box_key(tmp_path / "absent")


def test_receipts_are_random_and_stored_as_hashes() -> None:
    codes = {new_receipt() for _ in range(200)}
    assert len(codes) == 200
    code = next(iter(codes))
    assert receipt_id(code) == receipt_id(code.lower().replace("-", " ")) != receipt_id(new_receipt())
