"""`fedsante`: one command line, a sub-command per role."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from fedsante import __version__
from fedsante.errors import ConfigError, FedsanteError, field_problems

app = typer.Typer(help="fedsante: governed federated AI on health data.", no_args_is_help=True)
desk_app = typer.Typer(help="Run the regional AI desk.", no_args_is_help=True)
node_app = typer.Typer(help="Run and manage a hospital node.", no_args_is_help=True)
run_app = typer.Typer(help="Start and follow federated runs.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (figures go to docs/benchmarks.md).", no_args_is_help=True)
app.add_typer(desk_app, name="desk")
app.add_typer(node_app, name="node")
app.add_typer(run_app, name="run")
app.add_typer(bench_app, name="bench")

console = Console()
err = Console(stderr=True)

DeskUrl = Annotated[str, typer.Option(help="Base URL of the desk.", envvar="FEDSANTE_DESK_URL")]
TokenFile = Annotated[Path, typer.Option(help="File holding the desk admin token.", envvar="FEDSANTE_TOKEN_FILE")]
ConfigOpt = Annotated[Path, typer.Option("--config", help="Node config file (TOML).")]


def _setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long-poll is noise


def friendly(func):
    """Print a FedsanteError as one clear line on stderr and exit with status 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FedsanteError as exc:
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def _token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"Token file {path} does not exist. The desk writes it to <data dir>/admin-token.") from None


@app.command()
def version() -> None:
    """Print the installed fedsante version."""
    console.print(__version__)


@desk_app.command("serve")
@friendly
def desk_serve(
    data_dir: Annotated[Path, typer.Option(help="Folder for the database, keys and admin token.")] = Path("desk-data"),
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    round_timeout: Annotated[float, typer.Option(help="Seconds a stage waits for every node.")] = 30.0,
) -> None:
    """Serve the desk API (OpenAPI docs at /docs)."""
    import uvicorn

    from fedsante.desk.app import create_app
    from fedsante.desk.settings import DeskSettings

    _setup_logging()
    settings = DeskSettings(data_dir=data_dir, database_url=database_url, host=host, port=port,
                            round_timeout_seconds=round_timeout)
    application = create_app(settings)
    err.print(f"desk: admin token in {data_dir / 'admin-token'}; API docs at http://{host}:{port}/docs")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@node_app.command("init")
@friendly
def node_init(
    config: ConfigOpt,
    node_id: Annotated[str, typer.Option(help="Identifier of the node at the desk (lowercase, digits, '-').")],
    desk_url: DeskUrl = "http://127.0.0.1:8700",
    dataset: Annotated[str | None, typer.Option(help="Bundled hospital: cleveland, hungarian, switzerland, va.")] = None,
    dataset_path: Annotated[Path | None, typer.Option(help="Or a CSV file with a header (docs/data.md).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder for the key (default: <node-id>-data).")] = None,
    hospital_name: str = "",
    territory: str = "",
) -> None:
    """Write a node config and generate the node's Ed25519 key; print the public key to register."""
    from pydantic import ValidationError

    from fedsante.launcher import init_node
    from fedsante.node.config import NodeConfig

    try:
        cfg = NodeConfig(node_id=node_id, desk_url=desk_url, dataset=dataset,
                         dataset_path=dataset_path.resolve() if dataset_path else None,
                         data_dir=(data_dir or Path(f"{node_id}-data")).resolve(),
                         hospital_name=hospital_name, territory=territory)
    except ValidationError as exc:
        raise ConfigError("Invalid node settings: " + "; ".join(field_problems(exc))) from None
    public_key = init_node(config, cfg)
    console.print(f"Wrote {config}; key in {cfg.key_path}.\nPublic key (register it at the desk): {public_key}")


@node_app.command("check")
@friendly
def node_check(config: ConfigOpt) -> None:
    """Validate the node config and its dataset; print row counts (nothing is sent)."""
    from fedsante.node.config import load_config

    cfg = load_config(config)
    table = cfg.load_table()
    train, test = (len(table.part(s)[1]) for s in ("train", "test"))
    console.print(f"{cfg.node_id}: {table.source}: {train} training rows, {test} test rows, "
                  f"{table.dropped_rows} rows dropped (missing values or excluded by the split).")


@node_app.command("register")
@friendly
def node_register(
    config: ConfigOpt,
    organisation: Annotated[str, typer.Option(help="Organisation of the hospital (created if absent).")],
    token_file: TokenFile = Path("desk-data/admin-token"),
) -> None:
    """Register the node's public key at the desk (needs the desk admin token)."""
    from fedsante.desk.client import DeskClient
    from fedsante.federation.keys import load_key, public_key_b64
    from fedsante.node.config import load_config

    cfg = load_config(config)
    public_key = public_key_b64(load_key(cfg.key_path))

    async def register() -> None:
        async with DeskClient(cfg.desk_url, _token(token_file)) as desk:
            if organisation not in {o["name"] for o in await desk.organisations()}:
                await desk.create_organisation(organisation)
            await desk.register_node(cfg.node_id, organisation, public_key,
                                     hospital_name=cfg.hospital_name, territory=cfg.territory)

    asyncio.run(register())
    console.print(f"Registered node {cfg.node_id} at {cfg.desk_url}.")


@node_app.command("serve")
@friendly
def node_serve(config: ConfigOpt) -> None:
    """Connect to the desk (outbound only) and run the tasks it sends, until stopped."""
    import httpx

    from fedsante.federation.keys import load_key
    from fedsante.node.agent import NodeAgent
    from fedsante.node.config import load_config

    _setup_logging()
    cfg = load_config(config)
    table = cfg.load_table()
    key = load_key(cfg.key_path)

    async def serve() -> None:
        async with httpx.AsyncClient(base_url=cfg.desk_url) as client:
            agent = NodeAgent(node_id=cfg.node_id, table=table, key=key, client=client, poll_seconds=cfg.poll_seconds)
            logging.getLogger("fedsante.node").info("node %s: %d rows loaded; polling %s", cfg.node_id,
                                                    len(table.y), cfg.desk_url)
            await agent.run_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


def _parse_params(values: list[str]) -> dict:
    params: dict = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"Parameter {item!r} must look like name=value, e.g. rounds=15.")
        params[key] = value
    return params


@run_app.command("start")
@friendly
def run_start(
    project_id: Annotated[int, typer.Option(help="Project the run belongs to.")],
    nodes: Annotated[str, typer.Option(help="Comma-separated node ids.")],
    param: Annotated[list[str], typer.Option(help="Algorithm parameter name=value (repeatable).")] = [],  # noqa: B006
    desk_url: DeskUrl = "http://127.0.0.1:8700",
    token_file: TokenFile = Path("desk-data/admin-token"),
) -> None:
    """Start a federated run and follow it to the end."""
    from fedsante.desk.client import DeskClient

    async def start() -> dict:
        async with DeskClient(desk_url, _token(token_file)) as desk:
            run = await desk.start_run(project_id, [n.strip() for n in nodes.split(",") if n.strip()], _parse_params(param))
            with console.status("running") as status:
                return await desk.wait_run(run["id"], on_progress=lambda r: status.update(
                    f"run {r['id']}: round {r['current_round']}/{r['rounds']}"))

    run = asyncio.run(start())
    _print_metrics(run)


def _print_metrics(run: dict) -> None:
    table = Table(title=f"Run {run['id']}: {run['status']}")
    for column in ("node", "n test", "accuracy", "AUC"):
        table.add_column(column, justify="left" if column == "node" else "right")
    for node, m in run["result"]["node_metrics"].items():
        auc = "n/a" if m.get("auc") is None else f"{m['auc']:.3f}"
        table.add_row(node, f"{m['n']:.0f}", f"{m['accuracy']:.3f}", auc)
    console.print(table)


@run_app.command("show")
@friendly
def run_show(
    run_id: str,
    desk_url: DeskUrl = "http://127.0.0.1:8700",
    token_file: TokenFile = Path("desk-data/admin-token"),
) -> None:
    """Show a run's status and, once completed, its per-node metrics."""
    from fedsante.desk.client import DeskClient

    async def show() -> dict:
        async with DeskClient(desk_url, _token(token_file)) as desk:
            return await desk.run(run_id)

    run = asyncio.run(show())
    console.print(f"run {run['id']}: {run['status']}, round {run['current_round']}/{run['rounds']}"
                  + (f"\n{run['error']}" if run["error"] else ""))
    if run["result"]:
        _print_metrics(run)


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Output folder (results.json, report.html, logs).")] = Path("out/demo"),
    param: Annotated[list[str], typer.Option(help="Algorithm parameter name=value (repeatable).")] = [],  # noqa: B006
) -> None:
    """Start a desk and 4 hospital nodes on loopback, run the Fed-Heart-Disease study, print results."""
    from pydantic import ValidationError

    from fedsante.demo import run_demo
    from fedsante.federation.params import LogRegParams

    try:
        params = LogRegParams.model_validate(_parse_params(param))
    except ValidationError as exc:
        raise ConfigError("Invalid --param: " + "; ".join(field_problems(exc))) from None
    run_demo(out, params, console)


@bench_app.command("heart", context_settings={"allow_extra_args": True})
@friendly
def bench_heart(
    ctx: typer.Context,
    seeds: Annotated[list[int], typer.Option(help="Seeds, e.g. --seeds 42 43 44 45 46.")] = [42, 43, 44, 45, 46],  # noqa: B006
) -> None:
    """Pooled, local and federated accuracy on Fed-Heart-Disease, next to FLamby's numbers."""
    from fedsante.benchmarks.heart import print_heart

    extra = list(ctx.args)
    bad = [a for a in extra if not a.lstrip("-").isdigit()]
    if bad:
        raise ConfigError(f"Unexpected argument(s) {' '.join(bad)}; seeds must be integers, e.g. --seeds 42 43.")
    print_heart(list(dict.fromkeys([*seeds, *map(int, extra)])), console)


@bench_app.command("protocol")
@friendly
def bench_protocol(
    rounds: Annotated[int, typer.Option(help="FedAvg rounds to time.")] = 30,
    out: Annotated[Path, typer.Option(help="Working folder for the deployment.")] = Path("out/bench-protocol"),
) -> None:
    """Round latency of a 4-node FedAvg over loopback HTTP, with real desk and node processes."""
    from fedsante.benchmarks.protocol import print_protocol

    print_protocol(rounds, out, console)


def main() -> None:  # console-script entry point
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app(prog_name="fedsante")
