"""What every sub-command shares: consoles, the error decorator, desk options and tokens."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from fedsante.common.errors import ConfigError, FedsanteError, field_problems

__all__ = ["ConfigError", "field_problems"]

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

DeskUrl = Annotated[str, typer.Option(help="Base URL of the desk.", envvar="FEDSANTE_DESK_URL")]
TokenFile = Annotated[Path, typer.Option(
    help="File holding your account token (or set FEDSANTE_TOKEN).", envvar="FEDSANTE_TOKEN_FILE")]
ConfigOpt = Annotated[Path, typer.Option("--config", help="Node config file (TOML).", envvar="FEDSANTE_NODE_CONFIG")]
DEFAULT_DESK = "http://127.0.0.1:8700"
DEFAULT_TOKEN_FILE = Path("desk-data/admin-token")


def setup_logging(level: int = logging.INFO) -> None:
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


def read_token(path: Path) -> str:
    """The account token: $FEDSANTE_TOKEN if set, else the first line of ``path``."""
    if os.environ.get("FEDSANTE_TOKEN"):
        return os.environ["FEDSANTE_TOKEN"].strip()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"Token file {path} does not exist. Pass --token-file (the desk's bootstrap admin "
                          "token is in <desk data dir>/admin-token; other tokens come from 'fedsante account create').") from None


def with_desk(desk_url: str, token_file: Path, action: Callable[[Any], Awaitable[T]], *, verify=None) -> T:
    """Run ``action(client)`` with a desk client authenticated by the token in ``token_file``
    (``verify``: how to check the desk's certificate; default: the CA in FEDSANTE_DESK_CA, or the system's)."""
    from fedsante.desk.client import DeskClient

    async def go() -> T:
        async with DeskClient(desk_url, read_token(token_file), verify=verify) as desk:
            return await action(desk)

    return asyncio.run(go())


def rows_table(title: str, rows: list[dict], columns: list[str]) -> Table:
    """A Rich table of ``rows`` showing ``columns`` (missing values as '-')."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*("-" if row.get(c) in (None, "") else _cell(row.get(c)) for c in columns))
    return table


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parse_params(values: list[str]) -> dict:
    params: dict = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"Parameter {item!r} must look like name=value, e.g. rounds=15.")
        params[key] = value
    return params
