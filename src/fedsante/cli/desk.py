"""`fedsante desk ...` and `fedsante account ...`: the desk service, its keys and its accounts (admin)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from fedsante.common.errors import ConfigError
from fedsante.common.tls import is_loopback

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
    tls_cert: Annotated[Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM; e.g. the "
                                                       "desk.pem of 'fedsante desk tls init').")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
) -> None:
    """Serve the desk API (OpenAPI docs at /docs), over HTTPS with --tls-cert and --tls-key."""
    import uvicorn

    from fedsante.desk.settings import DeskSettings
    from fedsante.portal.app import create_app

    setup_logging()
    settings = DeskSettings(data_dir=data_dir, database_url=database_url, host=host, port=port,
                            round_timeout_seconds=round_timeout)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("Give both --tls-cert and --tls-key to serve HTTPS (or neither, on loopback only).")
    if tls_cert is None and not is_loopback(host):
        raise ConfigError(f"Refusing to serve plain HTTP on {host}: tokens and results would travel in clear. Give "
                          "--tls-cert and --tls-key (fedsante desk tls init), or put the desk behind a TLS proxy "
                          "listening on this machine's loopback (docs/security.md).")
    application = create_app(settings)
    scheme = "https" if tls_cert else "http"
    err.print(f"desk: admin token in {data_dir / 'admin-token'}; API docs at {scheme}://{host}:{port}/docs")
    uvicorn.run(application, host=host, port=port, log_level="warning",
                ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None)


tls_app = typer.Typer(help="TLS for the desk: a local CA and the desk's certificate.", no_args_is_help=True)
desk_app.add_typer(tls_app, name="tls")


@tls_app.command("init")
@friendly
def tls_init(
    data_dir: DataDir = Path("desk-data"),
    host: Annotated[list[str], typer.Option(help="Name or address nodes use to reach the desk (repeatable).")] = [
        "127.0.0.1", "localhost"],  # noqa: B006
) -> None:
    """Make a local CA and the desk's certificate under <data dir>/tls; nodes pin the CA (desk_ca)."""
    from fedsante.common.tls import make_local_ca

    files = make_local_ca(data_dir / "tls", tuple(host))
    console.print(f"CA certificate for the nodes to pin: {files.ca_cert}\n"
                  f"Serve with: fedsante desk serve --data-dir {data_dir} --tls-cert {files.server_cert} "
                  f"--tls-key {files.server_key}\n"
                  f"At each node: fedsante node init ... --desk-url https://{host[0]}:8700 --desk-ca ca.pem "
                  "(a copy of the CA certificate)")


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


@desk_app.command("backup")
@friendly
def desk_backup(
    out: Annotated[Path, typer.Option(help="A new (or empty) folder for the backup.")],
    data_dir: DataDir = Path("desk-data"),
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: SQLite in the data dir).")] = None,
) -> None:
    """Snapshot the desk while it runs: database (SQLite online backup), audit chain (verified), keys, TLS,
    with a manifest of SHA-256 digests (docs/reliability.md)."""
    from fedsante.desk.backup import backup_desk
    from fedsante.desk.settings import DeskSettings

    manifest = backup_desk(DeskSettings(data_dir=data_dir, database_url=database_url), out)
    audit, database = manifest["audit"], manifest["database"]
    console.print(f"Backup of {data_dir} in {out}: {len(manifest['files'])} files; audit chain {audit['entries']} "
                  f"entries, head {audit['head_seq']} ({audit['head_hash'][:16]}...)"
                  + (f"; database at schema revision {database['alembic_revision']}." if database["file"] else "."))
    if not database["file"]:
        err.print(database["note"])


@desk_app.command("restore")
@friendly
def desk_restore(
    backup: Annotated[Path, typer.Option(help="A folder made by 'fedsante desk backup'.")],
    data_dir: Annotated[Path, typer.Option(help="A new (or empty) folder to restore the desk into.")],
) -> None:
    """Check a backup's digests and restore it into a new data folder; the audit chain and database are verified."""
    from fedsante.desk.backup import restore_desk

    manifest = restore_desk(backup, data_dir)
    console.print(f"Restored {len(manifest['files'])} files into {data_dir}; audit chain verified up to entry "
                  f"{manifest['audit']['head_seq']}. Start it with: fedsante desk serve --data-dir {data_dir}")
    if not manifest["database"]["file"]:
        err.print(manifest["database"]["note"] + " Then pass --database-url to 'fedsante desk serve'.")
