"""Backup and restore of a hospital node's data directory (docs/reliability.md, "Backups and restore").

A node's state is a handful of files: its signing key, policy, acceptances, objection table with its
hash and box keys, dataset registry (``datasets.toml``) and audit chain (with ``audit-head.json`` if
present), plus its config file. The hospital's dataset files themselves are NOT copied: they stay under
the hospital's own backup policy (``datasets.toml`` only names them).

The manifest records each file's SHA-256, the chain's head and the privacy ledger's totals; a restore
checks the digests, verifies the restored chain ends at that head and recomputes the same totals.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from fedsante import __version__
from fedsante.audit import AuditLog, verify_file
from fedsante.audit.log import read_lines
from fedsante.common.backup import copy_private, fresh_folder, read_manifest, restore_into, write_manifest, write_private
from fedsante.common.errors import ConfigError, DataError
from fedsante.common.keys import load_key
from fedsante.node.config import NodeConfig, write_config
from fedsante.node.ledger import PrivacyLedger

KIND = "node"
CHAIN = "audit.jsonl"
CHAIN_HEAD = "audit-head.json"
KEY = "node_key.pem"
CONFIG = "node.toml"  # the node's config file, kept beside the data files (outside data/)
STATE_FILES = (KEY, "policy.toml", "acceptances.json", "datasets.toml", "objections.json", "objection_hash_key",
               "objection_box_key", CHAIN_HEAD)
NOT_COPIED = ("The hospital's dataset files are not in this backup: they stay under the hospital's own backup "
              "policy.")


def ledger_totals(data_dir: Path, node_id: str) -> dict:
    """The privacy ledger's totals per dataset, as recorded in the chain of ``data_dir``."""
    audit = AuditLog(Path(data_dir) / CHAIN, load_key(Path(data_dir) / KEY), node_id)
    return {name: spent.as_dict() for name, spent in sorted(PrivacyLedger(audit).totals().items())}


def backup_node(cfg: NodeConfig, out: Path, *, with_config: bool = True) -> dict:
    """Copy the node's state files and chain (verified), and its config, into the new folder ``out``;
    return the manifest."""
    data_dir = Path(cfg.data_dir)
    if not cfg.key_path.is_file():
        raise ConfigError(f"{data_dir} holds no node key ({KEY}): is it the data folder of node {cfg.node_id}?")
    with fresh_folder(out, "Backup folder") as out:
        data = out / "data"
        for name in STATE_FILES:
            if (data_dir / name).is_file():
                copy_private(data_dir / name, data / name)
        if with_config:  # as loaded: its relative paths made absolute
            write_config(out / CONFIG, cfg)
            (out / CONFIG).chmod(0o600)
        write_private(data / CHAIN, b"".join(read_lines(cfg.audit_path)))  # under the chain's shared lock
        check = verify_file(data / CHAIN)
        if not check.ok:
            raise DataError(f"The node's audit chain {cfg.audit_path} does not verify, so it was not backed up: "
                            f"{check.summary()} Keep the file as evidence.")
        audit = {"file": f"data/{CHAIN}", "entries": check.entries, "head_seq": check.head_seq,
                 "head_hash": check.head_hash}
        return write_manifest(out, KIND, {"fedsante_version": __version__, "node_id": cfg.node_id, "audit": audit,
                                          "privacy_totals": ledger_totals(data, cfg.node_id), "note": NOT_COPIED})


def restore_node(backup: Path, data_dir: Path, config_out: Path | None = None) -> dict:
    """Check the digests and restore the node's data folder into the new folder ``data_dir``; return the manifest.

    The restored chain must verify and end at the recorded head, and the privacy ledger must give the
    recorded totals. With ``config_out``, the backed-up config is written there pointing at ``data_dir``.
    """
    manifest = read_manifest(backup, KIND)
    audit, node_id = manifest.get("audit") or {}, manifest.get("node_id")
    if f"data/{CHAIN}" not in manifest["files"] or f"data/{KEY}" not in manifest["files"] or not node_id:
        raise DataError(f"The backup {backup} lacks the node's key, audit chain or id.")
    if config_out is not None:
        if CONFIG not in manifest["files"]:
            raise DataError(f"The backup {backup} holds no node config to write to {config_out}.")
        if Path(config_out).exists():
            raise ConfigError(f"{config_out} exists; give a new file for the restored config.")
    inner = {**manifest, "files": {name[len("data/"):]: entry for name, entry in manifest["files"].items()
                                   if name.startswith("data/")}}

    def check(folder: Path) -> None:
        result = verify_file(folder / CHAIN)
        if not result.ok:
            raise DataError(f"The restored audit chain does not verify: {result.summary()}")
        if (result.head_seq, result.head_hash) != (audit.get("head_seq"), audit.get("head_hash")):
            raise DataError(f"The restored audit chain ends at entry {result.head_seq}, not at the head in the "
                            f"manifest (entry {audit.get('head_seq')}).")
        totals = ledger_totals(folder, node_id)
        if totals != manifest.get("privacy_totals"):
            raise DataError(f"The restored privacy ledger totals {totals} differ from the recorded "
                            f"{manifest.get('privacy_totals')}.")

    restore_into(Path(backup) / "data", inner, data_dir, check)
    if config_out is not None:
        _write_config(Path(backup) / CONFIG, Path(config_out), Path(data_dir))
    return manifest


def _write_config(source: Path, dest: Path, data_dir: Path) -> None:
    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    raw["data_dir"] = str(data_dir.resolve())
    try:
        cfg = NodeConfig.model_validate(raw)
    except ValueError as exc:
        raise DataError(f"The backed-up config {source} is invalid ({exc}).") from None
    write_config(dest, cfg)
