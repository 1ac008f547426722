"""`fedsante desk ...` and `fedsante account ...`: the desk service, its keys and its accounts (admin)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from fedsante.cli.common import (DEFAULT_DESK, DEFAULT_TOKEN_FILE, DeskUrl, TokenFile, console, err, friendly,
                                 rows_table, setup_logging, with_desk)

desk_app = typer.Typer(help="Run the regional AI desk and manage its signing keys.", no_args_is_help=True)
keys_app = typer.Typer(help="The desk's Ed25519 signing keys.", no_args_is_help=True)
account_app = typer.Typer(help="Organisations and accounts (desk admin).", no_args_is_help=True)
admin_app = typer.Typer(help="Local administration of the desk, on its host.", no_args_is_help=True)
desk_app.add_typer(keys_app, name="keys")
desk_app.add_typer(admin_app, name="admin")
DataDir = Annotated[Path, typer.Option(help="The desk's data folder (database, keys, audit chain, admin token).")]


@desk_app.command("serve")
@friendly
def desk_serve(
    data_dir: DataDir = Path("desk-data"),
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    round_timeout: Annotated[float, typer.Option(help="Seconds a stage waits for every node.")] = 30.0,
) -> None:
    """Serve the desk API (OpenAPI docs at /docs)."""
    import uvicorn

    from fedsante.desk.settings import DeskSettings
    from fedsante.portal.app import create_app

    setup_logging()
    settings = DeskSettings(data_dir=data_dir, database_url=database_url, host=host, port=port,
                            round_timeout_seconds=round_timeout)
    application = create_app(settings)
    err.print(f"desk: admin token in {data_dir / 'admin-token'}; API docs at http://{host}:{port}/docs")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@admin_app.command("recover")
@friendly
def admin_recover(
    data_dir: DataDir = Path("desk-data"),
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir).")] = None,
    name: Annotated[str, typer.Option(help="The admin account to create or re-enable.")] = "admin",
) -> None:
    """Create or re-enable an admin account when no admin can act (run on the desk's host); new token in
    <data-dir>/admin-token (mode 0600), recorded in the desk's audit chain."""
    from fedsante.desk.app import recover_admin
    from fedsante.desk.settings import DeskSettings

    outcome, path = recover_admin(DeskSettings(data_dir=data_dir, database_url=database_url), name)
    console.print(f"Admin account {name} {outcome}, valid one year; its new token is in {path} (mode 0600). "
                  "The recovery is in the desk's audit chain.")


@keys_app.command("list")
@friendly
def keys_list(data_dir: DataDir = Path("desk-data")) -> None:
    """List the desk's signing keys (current and retired)."""
    from fedsante.desk.keyring import Keyring

    rows = [vars(k) for k in Keyring(data_dir).keys()]
    console.print(rows_table("Desk signing keys", rows, ["key_id", "created_at", "retired_at", "public_key"]))


@keys_app.command("rotate")
@friendly
def keys_rotate(data_dir: DataDir = Path("desk-data")) -> None:
    """Create a new signing key; the old one is retired but stays published for verification."""
    from fedsante.desk.keyring import Keyring

    info = Keyring(data_dir).rotate()
    console.print(f"New desk key {info.key_id} (public {info.public_key}). New approvals are signed with it; "
                  "each hospital must trust it: 'fedsante node policy trust --public-key ...'.")


@account_app.command("org")
@friendly
def account_org(name: str, kind: Annotated[str, typer.Option(help="hospital, desk, research, company, other")] = "hospital",
                desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Register an organisation."""
    org = with_desk(desk_url, token_file, lambda desk: desk.create_organisation(name, kind))
    console.print(f"Organisation {org['name']} ({org['kind']}) registered.")


@account_app.command("create")
@friendly
def account_create(
    name: str,
    organisation: Annotated[str, typer.Option(help="The account's organisation.")],
    role: Annotated[str, typer.Option(help="holder, reviewer, operator, auditor or admin.")],
    end_date: Annotated[str, typer.Option(help="Mandatory last day of validity, YYYY-MM-DD.")],
    save: Annotated[Path | None, typer.Option(help="Write the token to this file (mode 0600).")] = None,
    desk_url: DeskUrl = DEFAULT_DESK,
    token_file: TokenFile = DEFAULT_TOKEN_FILE,
) -> None:
    """Create an account; its token is shown once (or saved with --save)."""
    _check_date(end_date)
    account = with_desk(desk_url, token_file, lambda desk: desk.create_account(name, organisation, role, end_date))
    if save:
        fd = os.open(save, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(account["token"] + "\n")
        console.print(f"Account {name} ({role}, {organisation}, until {end_date}); token written to {save}.")
    else:
        console.print(f"Account {name} ({role}, {organisation}, until {end_date}).\nToken (shown once): {account['token']}")


def _check_date(text: str) -> None:
    from fedsante.common.errors import ConfigError

    try:
        date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--end-date {text!r} is not a date like 2027-06-30.") from None


@account_app.command("list")
@friendly
def account_list(desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """List accounts with role, organisation and end date (admin, auditor)."""
    rows = with_desk(desk_url, token_file, lambda desk: desk.accounts())
    console.print(rows_table("Accounts", rows, ["name", "role", "organisation", "end_date", "disabled_at"]))


@account_app.command("disable")
@friendly
def account_disable(name: str, desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Disable an account at once (its token stops working)."""
    with_desk(desk_url, token_file, lambda desk: desk.disable_account(name))
    console.print(f"Account {name} disabled.")


@account_app.command("whoami")
@friendly
def account_whoami(desk_url: DeskUrl = DEFAULT_DESK, token_file: TokenFile = DEFAULT_TOKEN_FILE) -> None:
    """Which account your token belongs to."""
    me = with_desk(desk_url, token_file, lambda desk: desk.me())
    console.print(f"{me['name']}: {me['role']} at {me['organisation']}")
