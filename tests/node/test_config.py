"""fedsante.node.config: a node's TOML file, validated; relative paths resolve against its folder."""

from pathlib import Path

import pytest

from fedsante.common.errors import ConfigError
from fedsante.node.config import NodeConfig, load_config, write_config

BASE = 'node_id = "chu-lille"\ndesk_url = "http://127.0.0.1:8700"\n'


def write_toml(tmp_path: Path, text: str, name: str = "node.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_resolves_relative_paths_against_the_file_folder(tmp_path: Path) -> None:
    # Prepare
    folder = tmp_path / "conf"
    folder.mkdir()
    path = write_toml(folder, BASE + 'data_dir = "state"\ndataset_path = "../site.csv"\npoll_seconds = 2.5\n')

    # Execute
    config = load_config(path)

    # Assert
    assert config.node_id == "chu-lille" and config.dataset is None
    assert config.data_dir == (folder / "state").resolve()
    assert config.dataset_path == (tmp_path / "site.csv").resolve()
    assert config.key_path == (folder / "state" / "node_key.pem").resolve()
    assert config.poll_seconds == 2.5 and config.hospital_name == ""


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    path = write_toml(tmp_path, BASE + f'data_dir = "{tmp_path / "abs"}"\ndataset = "va"\n')

    config = load_config(path)

    assert config.data_dir == tmp_path / "abs" and config.dataset == "va"


def test_a_bundled_dataset_name_resolves_to_its_declaration(tmp_path: Path) -> None:
    from fedsante.node.datasets import resolve_dataset

    config = load_config(write_toml(tmp_path, BASE + 'data_dir = "d"\ndataset = "switzerland"\n'))
    assert resolve_dataset(config).path.endswith("switzerland.csv")


def test_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    path = write_toml(tmp_path, BASE + 'data_dir = "d"\ndataset = "va"\npoll_secnds = 3\n')
    with pytest.raises(ConfigError, match=r"node\.toml is invalid: poll_secnds: Extra inputs are not permitted") as info:
        load_config(path)
    assert info.value.errors == ["poll_secnds: Extra inputs are not permitted"]


def test_both_dataset_and_dataset_path_are_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, BASE + 'data_dir = "d"\ndataset = "va"\ndataset_path = "x.csv"\n')
    with pytest.raises(ConfigError, match=r"set exactly one of 'dataset' \(a registered dataset or a bundled "
                                         r"hospital\) or 'dataset_path'"):
        load_config(path)


def test_neither_dataset_nor_dataset_path_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, BASE + 'data_dir = "d"\n')
    with pytest.raises(ConfigError, match=r"set exactly one of 'dataset' .* or 'dataset_path'"):
        load_config(path)


def test_missing_required_setting_is_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'node_id = "chu-lille"\ndata_dir = "d"\ndataset = "va"\n')
    with pytest.raises(ConfigError, match=r"desk_url: Field required"):
        load_config(path)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Node config .*absent\.toml does not exist\. Create one with 'fedsante node init'"):
        load_config(tmp_path / "absent.toml")


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'node_id = "chu-lille\n')
    with pytest.raises(ConfigError, match=r"node\.toml is not valid TOML: .*line 1"):
        load_config(path)


@pytest.mark.parametrize("node_id", ["CHU", "-lille", "a", "chu lille", "chu_lille", "x" * 64])
def test_bad_node_id_is_refused(tmp_path: Path, node_id: str) -> None:
    path = write_toml(tmp_path, f'node_id = "{node_id}"\ndesk_url = "http://d"\ndata_dir = "d"\ndataset = "va"\n')
    with pytest.raises(ConfigError, match=r"node_id: String should match pattern"):
        load_config(path)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('desk_url = "ftp://desk"', r"desk_url: String should match pattern '\^https\?://'"),
        ("poll_seconds = 0", r"poll_seconds: Input should be greater than 0"),
        ("poll_seconds = 61", r"poll_seconds: Input should be less than or equal to 60"),
    ],
)
def test_bad_values_are_refused_by_name(tmp_path: Path, line: str, message: str) -> None:
    text = f'node_id = "chu-lille"\ndata_dir = "d"\ndataset = "va"\n{line}\n'
    if "desk_url" not in line:
        text += 'desk_url = "http://d"\n'
    with pytest.raises(ConfigError, match=message):
        load_config(write_toml(tmp_path, text))


def test_write_config_then_load_config_round_trips(tmp_path: Path) -> None:
    # Prepare: quotes, backslashes and accents in free text
    config = NodeConfig(
        node_id="chu-lille", desk_url="https://desk.example:8700", data_dir=tmp_path / "state",
        dataset_path=tmp_path / "data" / "site.csv", hospital_name='CHU "Roger Salengro" \\ Lille',
        territory="Hauts-de-France (Nord, 59)", poll_seconds=7.5,
    )
    path = tmp_path / "out" / "node.toml"

    # Execute
    write_config(path, config)
    loaded = load_config(path)

    # Assert
    assert loaded == config


def test_write_config_round_trips_the_bundled_dataset_and_defaults(tmp_path: Path) -> None:
    config = NodeConfig(node_id="va", desk_url="http://127.0.0.1:8700", data_dir=tmp_path, dataset="va")
    path = tmp_path / "va.toml"

    write_config(path, config)

    assert load_config(path) == config
    assert "dataset_path" not in path.read_text()


def test_write_config_round_trips_control_characters_in_free_text(tmp_path: Path) -> None:
    # A hospital name pasted with a line break must not make the written file invalid TOML.
    config = NodeConfig(node_id="va", desk_url="http://127.0.0.1:8700", data_dir=tmp_path, dataset="va",
                        hospital_name="CHU\nLille", territory="Nord\tFrance")
    path = tmp_path / "va.toml"

    write_config(path, config)

    assert load_config(path) == config
