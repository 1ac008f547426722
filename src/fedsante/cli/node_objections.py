"""`fedsante node objections ...`: the patient objections at this hospital, and confirming a held burst."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Annotated

import typer

from fedsante.cli.common import ConfigOpt, console, friendly, rows_table
from fedsante.common.errors import Conflict

objections_app = typer.Typer(help="Patient objections at this hospital: in force, held, confirm a held burst.")
ShowConfig = Annotated[Path | None, typer.Option("--config", help="Node config file (TOML).",
                                                 envvar="FEDSANTE_NODE_CONFIG")]
Operator = Annotated[str, typer.Option(help="Who confirms (recorded in the node's audit chain).")]


def open_objections(cfg, key, audit):
    """The node's objections (keys, table, held burst), as ``node serve`` and ``objections confirm`` use them."""
    from fedsante.node.datasets import catalogue_entries
    from fedsante.node.objections import Objections, policy_burst_limit

    birth_dates = _birth_dates(cfg)
    birth_dates()  # a second factor without its dataset column is refused now, not at the first run
    return Objections.open(cfg.data_dir, cfg.node_id, key, audit, [cfg.dataset_name],
                           functools.partial(catalogue_entries, cfg), policy_burst_limit(cfg.policy_path), birth_dates)


def _birth_dates(cfg):
    from fedsante.node.datasets import load_raw, resolve_dataset
    from fedsante.node.objections import policy_birth_dates

    return policy_birth_dates(cfg.policy_path, lambda: load_raw(resolve_dataset(cfg)))


@objections_app.callback(invoke_without_command=True)
@friendly
def node_objections(ctx: typer.Context, config: ShowConfig = None) -> None:
    """Objections in force at this hospital, those held for confirmation, and how many patients each run's
    cohort left out."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise typer.BadParameter("give the node config with --config (or FEDSANTE_NODE_CONFIG)")
    from fedsante.node import operator
    from fedsante.node.config import load_config
    from fedsante.node.datasets import load_raw, resolve_dataset
    from fedsante.node.objections import ObjectionTable
    from fedsante.privacy.objections import load_hash_key

    cfg = load_config(config)
    table = ObjectionTable(cfg.data_dir / "objections.json", load_hash_key(cfg.data_dir / "objection_hash_key"))
    excluded = table.excluded(load_raw(resolve_dataset(cfg)), _birth_dates(cfg)())
    entries = operator.audit_log(cfg).entries()
    rows = [{"time": e.time, "run": e.subject, **e.details} for e in entries if e.action == "cohort.built"]
    console.print(rows_table(f"Cohorts built at {cfg.node_id}", rows, ["time", "run", "patients", "excluded"]))
    console.print(f"{len(table)} objection(s) in force; {len(excluded)} patient(s) of {cfg.dataset_name} are left out "
                  "of every new run. The identifiers are not stored: only keyed hashes (docs/objections.md).")
    held = _held(cfg)
    if held:
        console.print(f"{len(held)} objection(s) held since {min(held.values())}: more than the policy's "
                      "objection_burst_limit arrived at once, and none is applied. Check with the hospital's "
                      "patient office that they are plausible, then 'fedsante node objections confirm'.")


def _held(cfg) -> dict[str, str]:
    import json

    path = cfg.data_dir / "objections_held.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@objections_app.command("confirm")
@friendly
def node_objections_confirm(config: ConfigOpt, operator: Operator = "operator") -> None:
    """Apply the objections held as a burst (see 'fedsante node objections'): the node opens them, leaves
    those patients out of every new run and tells the desk."""
    import httpx

    from fedsante.common.keys import load_key
    from fedsante.node import operator as node_operator
    from fedsante.node.config import load_config

    cfg = load_config(config)
    held = _held(cfg)
    if not held:
        raise Conflict(f"No objection is held at {cfg.node_id}: there is nothing to confirm.")
    objections = open_objections(cfg, load_key(cfg.key_path), node_operator.audit_log(cfg))

    async def confirm() -> tuple[int, int]:
        async with httpx.AsyncClient(base_url=cfg.desk_url, verify=cfg.verify()) as client:
            return await objections.refresh(client, confirmed_by=operator)

    added, removed = asyncio.run(confirm())
    left = objections.held()
    console.print(f"{added} objection(s) applied at {cfg.node_id} ({len(held)} were held), {removed} withdrawn; "
                  f"{len(objections.table)} in force." + (f" {len(left)} newer one(s) held again." if left else ""))
