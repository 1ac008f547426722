"""A node's restore drill: back up its data folder, restore it elsewhere; the chain and the privacy ledger are intact."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from fedsante.audit import verify_file
from fedsante.common.errors import ConfigError, DataError
from fedsante.data.heart import load_hospital
from fedsante.node.agent import NodeAgent
from fedsante.node.backup import backup_node, ledger_totals, restore_node
from fedsante.node.config import NodeConfig, load_config


def _model_arrays() -> dict:
    import numpy as np

    from fedsante.federation.messages import pack

    return pack({"coef": np.zeros(13), "intercept": np.zeros(1), "mean": np.zeros(13), "scale": np.ones(13)})


@pytest.fixture
def node(governed):
    """The governed node with its key on disk, one DP release debited and a config."""
    (governed.folder / "node_key.pem").write_bytes(governed.node_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (governed.folder / "node_key.pem").chmod(0o600)
    agent = NodeAgent(node_id="va", table=load_hospital("va"), key=governed.node_key, client=None,
                      guard=governed.guard())
    assert agent.handle(governed.task("evaluate", run_id="run1", round=16, arrays=_model_arrays())).ok
    return NodeConfig(node_id="va", desk_url="http://127.0.0.1:8700", data_dir=governed.folder, dataset="va")


def test_the_restore_drill_keeps_the_chain_and_the_privacy_ledger(tmp_path, node) -> None:
    totals = ledger_totals(node.data_dir, "va")
    assert totals["va"]["epsilon"] > 0

    manifest = backup_node(node, tmp_path / "backup")

    assert {"data/node_key.pem", "data/policy.toml", "data/acceptances.json", "data/audit.jsonl",
            "node.toml"} <= set(manifest["files"])
    assert manifest["privacy_totals"] == totals and "not in this backup" in manifest["note"]
    assert all((tmp_path / "backup" / name).stat().st_mode & 0o777 == 0o600 for name in manifest["files"])

    restore_node(tmp_path / "backup", tmp_path / "restored", tmp_path / "restored.toml")

    check = verify_file(tmp_path / "restored" / "audit.jsonl")
    assert check.ok and check.head_hash == manifest["audit"]["head_hash"]
    assert ledger_totals(tmp_path / "restored", "va") == totals
    restored = load_config(tmp_path / "restored.toml")
    assert restored.data_dir == (tmp_path / "restored").resolve() and restored.node_id == "va"
    assert (tmp_path / "restored" / "node_key.pem").read_bytes() == (node.data_dir / "node_key.pem").read_bytes()


def test_a_corrupted_node_backup_is_refused_naming_the_file(tmp_path, node) -> None:
    backup_node(node, tmp_path / "backup")
    policy = tmp_path / "backup" / "data" / "policy.toml"
    policy.write_text(policy.read_text().replace("10.0", "100.0"))

    with pytest.raises(DataError, match=r"data/policy\.toml does not match its SHA-256"):
        restore_node(tmp_path / "backup", tmp_path / "restored")
    assert not (tmp_path / "restored").exists() or not any((tmp_path / "restored").iterdir())


def test_a_node_backup_into_a_non_empty_folder_is_refused(tmp_path, node) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")

    with pytest.raises(ConfigError, match="not empty"):
        backup_node(node, tmp_path / "full")
