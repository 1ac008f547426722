"""`fedsante audit ...`: verify and export audit chains (auditor / DPO)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedsante.cli.common import DEFAULT_DESK, DEFAULT_TOKEN_FILE, DeskUrl, TokenFile, console, friendly, with_desk
from fedsante.common.errors import DataError

audit_app = typer.Typer(help="Verify and export the hash-chained audit logs (auditor, DPO).", no_args_is_help=True)


@audit_app.command("verify")
@friendly
def audit_verify(
    chain: Annotated[Path, typer.Argument(help="An audit chain file (audit.jsonl of the desk or of a node).")],
    key: Annotated[list[str], typer.Option(help="The writer's registered public key (base64, repeatable for a desk "
                                                "that rotated its key): every entry must be signed by it.")] = [],  # noqa: B006
    signer_from_desk: Annotated[str | None, typer.Option(help="Take the expected signer from the desk at --desk-url: "
                                                              "'desk' for the desk's own chain (its published keys).")] = None,
    config: Annotated[Path | None, typer.Option(help="A node's config: its key and recorded head (for its operator).")] = None,
    anchor: Annotated[Path | None, typer.Option(help="The recorded head file (audit-head.json: genesis and last head); "
                                                     "by default the one next to the chain, if any.")] = None,
    genesis: Annotated[str | None, typer.Option(help="The chain's anchored genesis: the hash of its entry 0.")] = None,
    head: Annotated[str | None, typer.Option(help="Published head hash to compare with (from the desk).")] = None,
    published: Annotated[str | None, typer.Option(help="Compare with the head the desk publishes for this node id "
                                                       "(or 'desk'), fetched from --desk-url.")] = None,
    desk_url: DeskUrl = DEFAULT_DESK,
) -> None:
    """Check every link, hash and signature of a chain against its writer's key, genesis and recorded head."""
    from fedsante.audit.anchor import Anchor, anchor_path, verify_anchored

    keys = set(key)
    if config is not None:
        from fedsante.common.keys import load_key, public_key_b64
        from fedsante.node.config import load_config

        cfg = load_config(config)
        keys.add(public_key_b64(load_key(cfg.key_path)))
        anchor = anchor or anchor_path(cfg.audit_path)
    if signer_from_desk is not None:
        keys |= _desk_keys(desk_url, signer_from_desk)
    if not keys:
        raise DataError("Say whose chain this is: --key <the writer's public key, base64>, --signer-from-desk desk, "
                        "or --config <node config>. Without the expected signer, a chain re-signed with another key "
                        "would pass.")
    published_seq = None
    if published is not None:
        head, published_seq = _published_head(desk_url, published)
    if anchor is None and anchor_path(chain).exists():
        anchor = anchor_path(chain)
    recorded = Anchor.load(anchor) if anchor is not None else None  # before the chain: a writer updates it after
    if anchor is not None and recorded is None:
        raise DataError(f"Recorded head file {anchor} does not exist.")
    try:
        lines = chain.read_bytes().splitlines(keepends=True)
    except FileNotFoundError:
        raise DataError(f"Audit chain {chain} does not exist.") from None
    if genesis is not None:
        recorded = Anchor(genesis, recorded.seq if recorded else None, recorded.hash if recorded else None)
    result = verify_anchored(lines, keys, recorded)
    if not result.ok:
        raise DataError(f"{chain}: {result.summary()}")
    console.print(f"{chain}: {result.summary()}")
    console.print("Every entry is signed by the expected key" + (
        f"; it holds the recorded head (entry {recorded.seq})" if recorded and recorded.seq is not None else "") + (
        "; it starts from the anchored genesis." if recorded and recorded.genesis else
        " (no genesis given: deleted oldest entries are detected only with --anchor or --genesis)."))
    if head is not None:
        if published_seq is not None and result.head_seq is not None and published_seq > result.head_seq:
            raise DataError(f"{chain}: the chain ends at entry {result.head_seq}, but the desk publishes entry "
                            f"{published_seq}: its tail was cut off or an old copy was restored.")
        if head not in {line_hash for line_hash in _hashes(lines)}:
            raise DataError(f"{chain}: the published head {head[:16]}... is not an entry of this chain: the chain "
                            "was rewritten after the head was published, or it is another chain.")
        console.print(f"The published head {head[:16]}... is an entry of this chain.")


def _desk_keys(desk_url: str, who: str) -> set[str]:
    import httpx

    from fedsante.common.errors import DeskUnreachable

    if who != "desk":
        raise DataError(f"The desk does not publish the keys of nodes; pass node {who!r}'s registered key with --key "
                        "(or --config on the node itself).")
    try:
        keys = httpx.get(f"{desk_url}/api/v1/keys", timeout=30).json()
    except httpx.TransportError:
        raise DeskUnreachable(f"Cannot reach the desk at {desk_url}.") from None
    return {k["public_key"] for k in keys}


@audit_app.command("approval")
@friendly
def audit_approval(
    reference: Annotated[str, typer.Argument(help="A project's reference, e.g. RAIH-2026-0001.")],
    desk_url: DeskUrl = DEFAULT_DESK,
) -> None:
    """Verify a project's signed approvals against the desk's published keys (no account needed)."""
    import httpx

    from fedsante.common.errors import DeskUnreachable
    from fedsante.federation.approval import verify_published

    try:
        project = httpx.get(f"{desk_url}/projets/{reference}.json", timeout=30)
        keys = httpx.get(f"{desk_url}/api/v1/keys", timeout=30).json()
    except httpx.TransportError:
        raise DeskUnreachable(f"Cannot reach the desk at {desk_url}.") from None
    if project.status_code == 404:
        raise DataError(f"No public project {reference!r} at {desk_url}.")
    approvals = project.json()["approvals"]
    if not approvals:
        raise DataError(f"Project {reference} has no signed approval yet.")
    problems = [p for approval in approvals for p in verify_published(approval, keys)]
    if problems:
        raise DataError("; ".join(problems))
    for approval in approvals:
        console.print(f"{approval['id']}: signature valid (desk key {approval['desk_key_id']}), "
                      f"SHA-256 {approval['sha256'][:16]}... matches the document.")


def _published_head(desk_url: str, who: str) -> tuple[str, int | None]:
    import httpx

    from fedsante.common.errors import DeskUnreachable

    try:
        heads = httpx.get(f"{desk_url}/api/v1/audit/heads", timeout=30).json()
    except httpx.TransportError:
        raise DeskUnreachable(f"Cannot reach the desk at {desk_url}.") from None
    entry = heads["desk"] if who == "desk" else heads["nodes"].get(who)
    if not entry or not entry.get("hash"):
        raise DataError(f"The desk at {desk_url} publishes no audit head for {who!r} "
                        f"(nodes: {', '.join(heads['nodes']) or 'none'}).")
    return entry["hash"], entry.get("seq")


def _hashes(lines: list[bytes]) -> list[str]:
    import json

    return [json.loads(line)["hash"] for line in lines if line.strip()]


@audit_app.command("export")
@friendly
def audit_export(
    out: Annotated[Path, typer.Option(help="Where to write the desk's chain (JSON lines).")],
    desk_url: DeskUrl = DEFAULT_DESK,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Download the desk's audit chain (auditor or admin token), to verify it independently."""
    text = with_desk(desk_url, token_file, lambda desk: desk.audit_export())
    out.write_text(text or "", encoding="utf-8")
    console.print(f"Wrote {len((text or '').splitlines())} entries to {out}; check with 'fedsante audit verify {out}'.")


@audit_app.command("heads")
@friendly
def audit_heads(desk_url: DeskUrl = DEFAULT_DESK) -> None:
    """The head hashes the desk publishes for its chain and each node's chain (public)."""
    from fedsante.desk.client import DeskClient

    import asyncio

    async def go() -> dict:
        async with DeskClient(desk_url) as desk:
            return await desk.audit_heads()

    heads = asyncio.run(go())
    console.print(f"desk: entry {heads['desk']['seq']} {heads['desk']['hash']}")
    for node, head in heads["nodes"].items():
        console.print(f"{node}: entry {head['seq']} {head['hash']} (reported {head['reported_at']})")
