"""`fedsante node ...`: what a hospital data officer runs at the node."""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Annotated

import typer

from fedsante.cli.common import (DEFAULT_DESK, DEFAULT_TOKEN_FILE, ConfigOpt, DeskUrl, TokenFile, console, friendly,
                                 rows_table, setup_logging, with_desk)
from fedsante.cli.node_objections import objections_app
from fedsante.cli.node_policy import policy_app
from fedsante.common.errors import ConfigError, field_problems

node_app = typer.Typer(help="Run and manage a hospital node (hospital data officer).", no_args_is_help=True)
dataset_app = typer.Typer(help="Register and list the datasets this node holds (read locally, never sent).",
                          no_args_is_help=True)
node_app.add_typer(policy_app, name="policy")
node_app.add_typer(dataset_app, name="dataset")
node_app.add_typer(objections_app, name="objections")
Operator = Annotated[str, typer.Option(help="Who decides (recorded in the node's audit chain).")]
MapOpt = Annotated[list[str], typer.Option(
    "--map", help="Map a study variable: variable=Column or variable=Column:{local:study,...} (repeatable).")]
MappingFile = Annotated[Path | None, typer.Option(
    "--mapping", help="A TOML file with a [map] table (docs/data.md); --map options win over it.")]


@node_app.command("init")
@friendly
def node_init(
    config: ConfigOpt,
    node_id: Annotated[str, typer.Option(help="Identifier of the node at the desk (lowercase, digits, '-').")],
    desk_url: DeskUrl = DEFAULT_DESK,
    dataset: Annotated[str | None, typer.Option(
        help="A dataset registered at this node, or a bundled hospital: cleveland, hungarian, switzerland, "
             "va.")] = None,
    dataset_path: Annotated[Path | None, typer.Option(help="Or a CSV file with a header (docs/data.md).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder for key, policy, audit (default: <node-id>-data).")] = None,
    hospital_name: str = "",
    territory: str = "",
    desk_ca: Annotated[Path | None, typer.Option(
        help="The desk's CA certificate to pin (its ca.pem from 'fedsante desk tls init').")] = None,
) -> None:
    """Write a node config, its Ed25519 key and a default policy; print the public key to register."""
    from pydantic import ValidationError

    from fedsante.node.config import NodeConfig
    from fedsante.node.operator import init_node

    try:
        cfg = NodeConfig(node_id=node_id, desk_url=desk_url, dataset=dataset,
                         dataset_path=dataset_path.resolve() if dataset_path else None,
                         data_dir=(data_dir or Path(f"{node_id}-data")).resolve(),
                         hospital_name=hospital_name, territory=territory,
                         desk_ca=desk_ca.resolve() if desk_ca else None)
    except ValidationError as exc:
        raise ConfigError("Invalid node settings: " + "; ".join(field_problems(exc))) from None
    public_key = init_node(cfg, config)
    console.print(f"Wrote {config}; key in {cfg.key_path}; policy in {cfg.policy_path}.\n"
                  f"Public key (register it at the desk): {public_key}\n"
                  "Next: trust the desk's key with 'fedsante node policy trust --config ... --from-desk'.")
    from fedsante.data.bundled import bundled_datasets
    from fedsante.node.datasets import registry

    if dataset and dataset not in bundled_datasets() and registry(cfg).get(dataset) is None:
        console.print(f"Dataset {dataset!r} is not registered yet: "
                      f"'fedsante node dataset add {dataset} --path FILE --config {config}'.")


@node_app.command("check")
@friendly
def node_check(
    config: ConfigOpt,
    project: Annotated[str | None, typer.Option(
        help="A project reference: compile the cohort of its study with this node's mapping and show it.")] = None,
    map_option: MapOpt = [],  # noqa: B006
    mapping_file: MappingFile = None,
) -> None:
    """Validate the node config, its dataset and its policy; with --project, the local feasibility of a study.

    Every count and value shown stays on this screen: nothing is sent. Exit status 1 when the
    mapping leaves values the study cannot read.
    """
    from fedsante.node.config import load_config
    from fedsante.node.policy import load_policy

    cfg = load_config(config)
    policy = load_policy(cfg.policy_path)
    if project is not None:
        _check_project(cfg, project, map_option, mapping_file, policy.k_min_floor)
        return
    _check_dataset(cfg)
    console.print(f"policy {cfg.policy_path}: k_min >= {policy.k_min_floor}, "
                  f"{len(policy.trusted_desk_keys)} trusted desk key(s).")


def _check_dataset(cfg) -> None:
    from fedsante.node.datasets import load_raw, resolve_dataset

    decl = resolve_dataset(cfg)
    raw = load_raw(decl)  # refused with the file, line or column when it cannot be read
    console.print(f"{cfg.node_id}: dataset {decl.name!r} ({raw.source}): {raw.n_rows} rows, "
                  f"{len(raw.columns)} columns ({', '.join(raw.columns)}). What a study would see: "
                  "'fedsante node check --project REF'.")


def _check_project(cfg, reference: str, map_option: list[str], mapping_file: Path | None, k_min_floor: int) -> None:
    from fedsante.node import operator
    from fedsante.node.datasets import combine_mapping
    from fedsante.node.policy import Acceptances
    from fedsante.node.readiness import format_readiness, readiness

    signed = asyncio.run(operator.fetch_approval(cfg, reference))
    document = signed.document
    study = getattr(document, "study", None)
    if study is None:
        raise ConfigError(f"The approval of {reference} carries no study, so there is no cohort to check "
                          "(the desk predates studies in approvals).")
    if map_option or mapping_file:
        mapping = combine_mapping(map_option, mapping_file)
    else:
        mapping = Acceptances(cfg.acceptances_path).mapping(document.approval_id)
    report = readiness(cfg, study, mapping, k_min=max(document.k_min, k_min_floor))
    for line in format_readiness(report):
        console.print(line, highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


@node_app.command("register")
@friendly
def node_register(
    config: ConfigOpt,
    organisation: Annotated[str, typer.Option(help="Organisation of the hospital (created if absent, admin only).")],
    desk_url: DeskUrl = DEFAULT_DESK,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Register the node's public key at the desk (admin, or operator of that organisation)."""
    from fedsante.common.keys import load_key, public_key_b64
    from fedsante.node.config import load_config

    cfg = load_config(config)
    public_key = public_key_b64(load_key(cfg.key_path))

    async def register(desk) -> None:
        if organisation not in {o["name"] for o in await desk.organisations()}:
            await desk.create_organisation(organisation)
        await desk.register_node(cfg.node_id, organisation, public_key,
                                 hospital_name=cfg.hospital_name, territory=cfg.territory)

    with_desk(cfg.desk_url if desk_url == DEFAULT_DESK else desk_url, token_file, register, verify=cfg.verify())
    console.print(f"Registered node {cfg.node_id} at {cfg.desk_url}.")


@node_app.command("serve")
@friendly
def node_serve(config: ConfigOpt) -> None:
    """Connect to the desk (outbound only) and run the approved tasks it sends, until stopped."""
    import httpx

    from fedsante.common.keys import load_key
    from fedsante.node.ledger import carried_totals
    from fedsante.node import operator
    from fedsante.node.agent import NodeAgent
    from fedsante.node.config import load_config
    from fedsante.cli.node_objections import open_objections
    from fedsante.node.datasets import build_cohort, catalogue_entries, load_raw, resolve_dataset

    setup_logging()
    cfg = load_config(config)
    rows = load_raw(resolve_dataset(cfg)).n_rows  # the file is read (and refused if unreadable) before serving
    catalogue_entries(cfg)  # and its catalogue entries (columns and types) refused if the desk could not take them
    key = load_key(cfg.key_path)
    guard = operator.guard(cfg)
    guard.audit.prune(cfg.audit_retention_days, carry=carried_totals)
    meter = None
    if cfg.measure_energy:
        from fedsante.reports.carbon import ComputeMeter

        meter = ComputeMeter(cfg.carbon_country)

    async def serve() -> None:
        async with httpx.AsyncClient(base_url=cfg.desk_url, verify=cfg.verify()) as client:
            agent = NodeAgent(node_id=cfg.node_id, source=functools.partial(build_cohort, cfg), key=key,
                              client=client, guard=guard,
                              poll_seconds=cfg.poll_seconds, meter=meter,
                              objections=open_objections(cfg, key, guard.audit))
            logging.getLogger("fedsante.node").info("node %s: %d rows in %s; polling %s", cfg.node_id, rows,
                                                    cfg.dataset_name, cfg.desk_url)
            await agent.run_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


def _decide(config: Path, reference: str, decision: str, operator_name: str, reason: str,
            mapping=None) -> None:
    from fedsante.node import operator
    from fedsante.node.config import load_config

    cfg = load_config(config)
    signed, entry = asyncio.run(operator.decide(cfg, reference, decision, operator=operator_name, reason=reason,
                                                mapping=mapping))
    doc = signed.document
    console.print(f"{decision.capitalize()} approval {doc.approval_id} ({doc.title}) at {cfg.node_id}; "
                  f"document sha256 {entry['sha256'][:16]}...; recorded in {cfg.acceptances_path} and "
                  f"{cfg.audit_path}, and reported to the desk.")


@node_app.command("accept")
@friendly
def node_accept(reference: str, config: ConfigOpt, operator: Operator = "operator", reason: str = "",
                map_option: MapOpt = [],  # noqa: B006
                mapping_file: MappingFile = None) -> None:
    """Verify a project's signed approval against this node's policy and its mapping, and accept it.

    When the approval carries a study, the cohort is compiled locally with the mapping (--map,
    --mapping; unmapped variables read the column of the same name) and accepting is refused while
    values remain that the study cannot read. The mapping is stored with the acceptance.
    """
    from fedsante.node.datasets import combine_mapping

    mapping = combine_mapping(map_option, mapping_file)
    _decide(config, reference, "accepted", operator, reason or "within local policy", mapping)


@node_app.command("decline")
@friendly
def node_decline(reference: str, config: ConfigOpt,
                 reason: Annotated[str, typer.Option(help="Why (shown to the desk and the applicant).")],
                 operator: Operator = "operator") -> None:
    """Decline a project: this node will refuse every task of it."""
    _decide(config, reference, "declined", operator, reason)


@node_app.command("acceptances")
@friendly
def node_acceptances(config: ConfigOpt) -> None:
    """List the approvals this node accepted or declined."""
    from fedsante.node.config import load_config
    from fedsante.node.policy import Acceptances

    cfg = load_config(config)
    rows = [{"approval": k, **v} for k, v in Acceptances(cfg.acceptances_path).all().items()]
    console.print(rows_table(f"Decisions of {cfg.node_id}", rows,
                             ["approval", "project", "decision", "decided_at", "operator", "reason"]))


@node_app.command("ledger")
@friendly
def node_ledger(config: ConfigOpt) -> None:
    """This hospital's privacy-budget ledger: every release debited on its datasets, and the totals."""
    from fedsante.node import operator
    from fedsante.node.config import load_config
    from fedsante.node.ledger import DEBIT, PrivacyLedger
    from fedsante.node.policy import load_policy

    cfg = load_config(config)
    audit = operator.audit_log(cfg)
    rows = [{"time": e.time, **e.details[DEBIT]} for e in audit.entries() if DEBIT in e.details]
    console.print(rows_table(f"Privacy debits at {cfg.node_id}", rows,
                             ["time", "dataset", "project", "run", "kind", "round", "epsilon", "run_epsilon", "delta"]))
    caps = load_policy(cfg.policy_path).datasets
    totals = [{"dataset": name, **spent.as_dict(), "epsilon_cap": caps[name].epsilon_cap if name in caps else None}
              for name, spent in PrivacyLedger(audit).totals().items()]
    console.print(rows_table("Spent per dataset (sum over runs and projects)", totals,
                             ["dataset", "epsilon", "delta", "runs", "epsilon_cap"]))


@dataset_app.command("add")
@friendly
def dataset_add(
    name: Annotated[str, typer.Argument(help="The dataset's name at this node (lower case, digits, '-', '_').")],
    config: ConfigOpt,
    path: Annotated[Path, typer.Option(help="A CSV or Parquet file, one row per patient.")],
    file_format: Annotated[str | None, typer.Option(
        "--format", help="csv or parquet (default: from the extension).")] = None,
    id_column: Annotated[str, typer.Option(help="The column identifying patients.")] = "patient_id",
    description: Annotated[str, typer.Option(help="Free text, may be published in the desk's catalogue.")] = "",
    delimiter: Annotated[str, typer.Option(help="CSV delimiter.")] = ",",
    missing: Annotated[list[str], typer.Option(
        help="A value read as missing (repeatable; default: '', NA, ?, nan).")] = [],  # noqa: B006
    replace: Annotated[bool, typer.Option(help="Replace a dataset registered under the same name.")] = False,
) -> None:
    """Register a dataset file at this node after reading it; print its columns and rows (locally)."""
    from pydantic import ValidationError

    from fedsante.data.sources import DatasetDeclaration, describe
    from fedsante.node.config import load_config
    from fedsante.node.datasets import registry

    cfg = load_config(config)
    fields = {"name": name, "path": str(path.resolve()), "format": file_format, "id_column": id_column,
              "description": description, "delimiter": delimiter}
    if missing:
        fields["missing_values"] = missing
    try:
        decl = DatasetDeclaration.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError("Invalid dataset declaration: " + "; ".join(field_problems(exc))) from None
    reg = registry(cfg)
    raw = reg.add(decl, replace=replace)
    rows = [{"column": c.name, "type": c.type, "distinct": c.distinct} for c in describe(raw)]
    console.print(rows_table(f"{name}: {raw.n_rows} rows (shown here only)", rows, ["column", "type", "distinct"]))
    console.print(f"Registered {name!r} in {reg.path}."
                  + ("" if cfg.dataset == name else f" Set 'dataset = \"{name}\"' in {config} to use it."))


@dataset_app.command("list")
@friendly
def dataset_list(config: ConfigOpt) -> None:
    """The datasets registered at this node, and the bundled ones."""
    from fedsante.data.bundled import bundled_datasets
    from fedsante.node.config import load_config
    from fedsante.node.datasets import registry

    cfg = load_config(config)
    registered = registry(cfg).all()
    rows = [{"name": d.name, "source": "registered", "format": d.format, "path": d.path, "id_column": d.id_column,
             "description": d.description} for d in registered.values()]
    rows += [{"name": d.name, "source": "bundled", "format": d.format, "path": d.path, "id_column": d.id_column,
              "description": d.description} for d in bundled_datasets().values() if d.name not in registered]
    for row in rows:
        row["used"] = "yes" if row["name"] == cfg.dataset_name else ""
    console.print(rows_table(f"Datasets of {cfg.node_id}", rows,
                             ["name", "source", "used", "format", "path", "id_column", "description"]))


@node_app.command("backup")
@friendly
def node_backup(config: ConfigOpt, out: Annotated[Path, typer.Option(help="A new (or empty) folder.")]) -> None:
    """Back up this node's data folder (key, policy, acceptances, objections, datasets.toml, audit chain) and
    config; not the dataset files themselves (docs/reliability.md)."""
    from fedsante.node.backup import backup_node
    from fedsante.node.config import load_config

    manifest = backup_node(load_config(config), out)
    console.print(f"Backup of node {manifest['node_id']} in {out}: {len(manifest['files'])} files; audit chain "
                  f"verified up to entry {manifest['audit']['head_seq']}. {manifest['note']}")


@node_app.command("restore")
@friendly
def node_restore(
    backup: Annotated[Path, typer.Option(help="A folder made by 'fedsante node backup'.")],
    data_dir: Annotated[Path, typer.Option(help="A new (or empty) data folder to restore into.")],
    config_out: Annotated[Path | None, typer.Option("--config", help="Write the restored config here (a new "
                                                                     "file), pointing at --data-dir.")] = None,
) -> None:
    """Check a node backup's digests and restore it; the audit chain and privacy ledger totals are verified."""
    from fedsante.node.backup import restore_node

    manifest = restore_node(backup, data_dir, config_out)
    console.print(f"Restored node {manifest['node_id']} into {data_dir}; audit chain verified up to entry "
                  f"{manifest['audit']['head_seq']}, privacy ledger totals unchanged."
                  + (f" Config: {config_out}." if config_out else ""))
