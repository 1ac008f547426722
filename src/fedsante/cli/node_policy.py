"""`fedsante node policy ...`: this hospital's policy (trusted desk keys, k_min floor, epsilon caps, auto-accept)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from fedsante.cli.common import ConfigOpt, console, friendly
from fedsante.common.errors import ConfigError

policy_app = typer.Typer(help="Show and change this hospital's policy (trusted desk keys, k_min, epsilon caps).",
                         no_args_is_help=True)


@policy_app.command("show")
@friendly
def policy_show(config: ConfigOpt) -> None:
    """Print this node's policy file."""
    from fedsante.node.config import load_config
    from fedsante.node.policy import dump_policy, load_policy

    cfg = load_config(config)
    console.print(f"# {cfg.policy_path}\n" + dump_policy(load_policy(cfg.policy_path)), highlight=False)


@policy_app.command("init")
@friendly
def policy_init(config: ConfigOpt) -> None:
    """Write the default policy (k_min 11, epsilon cap 10 for this node's dataset, no trusted desk)."""
    from fedsante.node.config import load_config
    from fedsante.node.operator import init_policy

    cfg = load_config(config)
    init_policy(cfg)
    console.print(f"Wrote {cfg.policy_path}.")


@policy_app.command("trust")
@friendly
def policy_trust(
    config: ConfigOpt,
    public_key: Annotated[str | None, typer.Option(help="Desk public key (base64), checked out of band.")] = None,
    from_desk: Annotated[bool, typer.Option(help="Fetch the desk's current key from its /api/v1/keys.")] = False,
    label: str = "regional AI desk",
) -> None:
    """Trust a desk signing key (approvals and tasks signed with it will be accepted)."""
    from fedsante.node.config import load_config
    from fedsante.node.operator import update_policy

    cfg = load_config(config)
    if from_desk == (public_key is not None):
        raise ConfigError("Pass exactly one of --public-key or --from-desk.")
    if from_desk:
        keys = _desk_keys(cfg.desk_url, cfg.verify())
        public_key = next(k["public_key"] for k in keys if k["retired_at"] is None)
    policy = update_policy(cfg, "trust", public_key=public_key, label=label)
    trusted = policy.trusted_desk_keys[-1]
    console.print(f"Trusting desk key {trusted.key_id} ({label}). Compare this id with the one the desk "
                  "publishes before accepting any project.")


def _desk_keys(desk_url: str, verify=None) -> list[dict]:
    from fedsante.desk.client import DeskClient

    async def keys() -> list[dict]:
        async with DeskClient(desk_url, verify=verify) as desk:
            return await desk.keys()

    return asyncio.run(keys())


@policy_app.command("untrust")
@friendly
def policy_untrust(config: ConfigOpt, key_id: Annotated[str, typer.Option(help="Key id to remove.")]) -> None:
    """Stop trusting a desk key."""
    from fedsante.node.config import load_config
    from fedsante.node.operator import update_policy

    update_policy(load_config(config), "untrust", key_id=key_id)
    console.print(f"No longer trusting desk key {key_id}.")


@policy_app.command("set-cap")
@friendly
def policy_set_cap(config: ConfigOpt, epsilon_cap: Annotated[float, typer.Option(help="Largest epsilon.")],
                   dataset: Annotated[str | None, typer.Option(help="Dataset (default: this node's).")] = None) -> None:
    """Set the largest privacy budget (epsilon) an approval may spend on a dataset."""
    from fedsante.node.config import load_config
    from fedsante.node.operator import update_policy

    cfg = load_config(config)
    update_policy(cfg, "set-cap", dataset=dataset or cfg.dataset_name, epsilon_cap=epsilon_cap)
    console.print(f"epsilon cap of {dataset or cfg.dataset_name}: {epsilon_cap:g}.")


@policy_app.command("k-min")
@friendly
def policy_k_min(config: ConfigOpt, value: Annotated[int, typer.Argument(help="New floor (>= 11).")]) -> None:
    """Raise this node's minimum cell size (it can never go below 11)."""
    from fedsante.node.config import load_config
    from fedsante.node.operator import update_policy

    update_policy(load_config(config), "k-min", k_min_floor=value)
    console.print(f"k_min floor: {value}.")


@policy_app.command("auto-accept")
@friendly
def policy_auto_accept(
    config: ConfigOpt,
    enabled: Annotated[bool, typer.Option("--on/--off", help="Accept automatically within the limits.")],
    algorithm: Annotated[list[str], typer.Option(help="Algorithm id (repeatable).")] = [],  # noqa: B006
    purpose: Annotated[list[str], typer.Option(help="Purpose category (repeatable).")] = [],  # noqa: B006
    max_epsilon: Annotated[float, typer.Option(help="Largest epsilon accepted automatically.")] = 1.0,
) -> None:
    """Accept automatically the approvals that lie within local limits (off by default)."""
    from fedsante.node.config import load_config
    from fedsante.node.operator import update_policy

    update_policy(load_config(config), "auto-accept", enabled=enabled, algorithms=algorithm, purposes=purpose,
                  max_epsilon=max_epsilon)
    console.print(f"auto-accept {'on' if enabled else 'off'}.")
