"""`fedsante`: one command line, a sub-command per role.

desk / account: desk admin; project: project holder; review: desk reviewer; node: hospital data
officer; audit: auditor / DPO; run: project holder; demo and bench: everyone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fedsante import __version__
from fedsante.cli.audit import audit_app
from fedsante.cli.common import ConfigError, console, field_problems, friendly, parse_params
from fedsante.cli.desk import account_app, desk_app
from fedsante.cli.node import node_app
from fedsante.cli.projects import project_app, report, review_app, run_app

app = typer.Typer(help="fedsante: governed federated AI on health data.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (figures go to docs/benchmarks.md).", no_args_is_help=True)
app.add_typer(desk_app, name="desk")
app.add_typer(account_app, name="account")
app.add_typer(project_app, name="project")
app.add_typer(review_app, name="review")
app.add_typer(node_app, name="node")
app.add_typer(run_app, name="run")
app.add_typer(audit_app, name="audit")
app.add_typer(bench_app, name="bench")
app.command("report")(report)


@app.command()
def version() -> None:
    """Print the installed fedsante version."""
    console.print(__version__)


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Output folder (results.json, report.html, logs).")] = Path("out/demo"),
    param: Annotated[list[str], typer.Option(help="Algorithm parameter name=value (repeatable).")] = [],  # noqa: B006
) -> None:
    """Start a desk and 4 hospital nodes on loopback, run the Fed-Heart-Disease study, print results."""
    from pydantic import ValidationError

    from fedsante.sim.demo import run_demo
    from fedsante.algorithms.logreg.params import LogRegParams

    try:
        params = LogRegParams.model_validate(parse_params(param))
    except ValidationError as exc:
        raise ConfigError("Invalid --param: " + "; ".join(field_problems(exc))) from None
    run_demo(out, params, console)


@bench_app.command("heart", context_settings={"allow_extra_args": True})
@friendly
def bench_heart(
    ctx: typer.Context,
    seeds: Annotated[list[int], typer.Option(help="Seeds, e.g. --seeds 42 43 44 45 46.")] = [42, 43, 44, 45, 46],  # noqa: B006
    dp: Annotated[bool, typer.Option("--dp", help="Accuracy against epsilon (0.5, 1, 2, 5, 10) under DP.")] = False,
    repeats: Annotated[int, typer.Option(min=2, max=100, help="With --dp: runs per epsilon.")] = 5,
) -> None:
    """Pooled, local and federated accuracy on Fed-Heart-Disease next to FLamby's numbers; --dp: against epsilon."""
    if dp:
        from fedsante.benchmarks.heart_dp import print_heart_dp

        print_heart_dp(repeats, console)
        return
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
