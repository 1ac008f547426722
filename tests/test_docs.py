"""Every setting, config key and command is documented."""

from pathlib import Path

import pytest
from typer.main import get_command

from fedsante.cli import app
from fedsante.desk.settings import DeskSettings
from fedsante.node.config import NodeConfig

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("name", sorted(DeskSettings.model_fields))
def test_each_desk_setting_is_documented(name: str) -> None:
    assert f"| `{name}` |" in ARCHITECTURE


@pytest.mark.parametrize("name", sorted(NodeConfig.model_fields))
def test_each_node_config_key_is_documented(name: str) -> None:
    assert f"| `{name}` |" in ARCHITECTURE


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


@pytest.mark.parametrize("command", sorted(_commands(get_command(app))))
def test_each_cli_command_is_documented(command: str) -> None:
    docs = (ROOT / "README.md").read_text() + (ROOT / "docs" / "cli.md").read_text()
    assert f"fedsante {command}" in docs
