"""`fedsante audit ...`: verify and export audit chains (auditor / DPO)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedsante.cli.common import DEFAULT_DESK, DEFAULT_TOKEN_FILE, DeskUrl, TokenFile, console, friendly, with_desk
from fedsante.errors import DataError

audit_app = typer.Typer(help="Verify and export the hash-chained audit logs (auditor, DPO).", no_args_is_help=True)


@audit_app.command("verify")
@friendly
def audit_verify(
    chain: Annotated[Path, typer.Argument(help="An audit chain file (audit.jsonl of the desk or of a node).")],
    trusted_key: Annotated[list[str], typer.Option(help="Only accept entries signed by this public key "
                                                         "(base64, repeatable).")] = [],  # noqa: B006
    head: Annotated[str | None, typer.Option(help="Published head hash to compare with (from the desk).")] = None,
) -> None:
    """Check every link, hash and signature of a chain; name the first tampered entry."""
    from fedsante.audit.chain import verify_chain

    try:
        lines = chain.read_bytes().splitlines(keepends=True)
    except FileNotFoundError:
        raise DataError(f"Audit chain {chain} does not exist.") from None
    result = verify_chain(lines, set(trusted_key) or None)
    if not result.ok:
        raise DataError(f"{chain}: {result.summary()}")
    console.print(f"{chain}: {result.summary()}")
    if head is not None:
        if head not in {line_hash for line_hash in _hashes(lines)}:
            raise DataError(f"{chain}: the published head {head[:16]}... is not an entry of this chain: the chain "
                            "was rewritten after the head was published, or it is another chain.")
        console.print(f"The published head {head[:16]}... is an entry of this chain.")


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
