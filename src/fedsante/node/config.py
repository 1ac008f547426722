"""A node's configuration file (TOML), validated; unknown or missing settings are refused by name."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fedsante.common.errors import ConfigError, field_problems


class NodeConfig(BaseModel):
    """Settings of one hospital node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="Node identifier registered at the desk.")
    desk_url: str = Field(pattern=r"^https?://", description="Base URL of the desk, e.g. http://127.0.0.1:8700.")
    data_dir: Path = Field(description="Folder for the node's key and local state (never committed).")
    dataset: str | None = Field(None, description="A dataset registered at this node ('fedsante node dataset add') "
                                "or a bundled hospital: cleveland, hungarian, switzerland or va.")
    dataset_path: Path | None = Field(None, description="Or a CSV file with a header, named by its stem (docs/data.md).")
    hospital_name: str = Field("", description="Display name of the hospital.")
    territory: str = Field("", description="Département or region of the hospital (node metadata).")
    poll_seconds: float = Field(10.0, gt=0, le=60, description="How long one long-poll waits for a task.")
    audit_retention_days: int = Field(365, ge=180, le=3 * 366, description="Days the node keeps audit entries.")
    measure_energy: bool = Field(True, description="Measure each computation's energy with CodeCarbon (offline).")
    carbon_country: str = Field("FRA", pattern=r"^[A-Z]{3}$",
                                description="ISO 3166-1 alpha-3 country of the grid's carbon intensity.")

    @model_validator(mode="after")
    def _one_dataset(self) -> NodeConfig:
        if (self.dataset is None) == (self.dataset_path is None):
            raise ValueError("set exactly one of 'dataset' (a registered dataset or a bundled hospital) or "
                             "'dataset_path' (a CSV file)")
        return self

    @property
    def key_path(self) -> Path:
        return self.data_dir / "node_key.pem"

    @property
    def policy_path(self) -> Path:
        return self.data_dir / "policy.toml"

    @property
    def acceptances_path(self) -> Path:
        return self.data_dir / "acceptances.json"

    @property
    def datasets_path(self) -> Path:
        """The node's dataset registry (``fedsante.node.datasets.DatasetRegistry``)."""
        return self.data_dir / "datasets.toml"

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit.jsonl"

    @property
    def dataset_name(self) -> str:
        """The dataset's name in approvals: the bundled hospital, or the CSV file's stem."""
        return self.dataset or (self.dataset_path.stem if self.dataset_path else "")



def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node config; relative paths are resolved against the file's folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Node config {path} does not exist. Create one with 'fedsante node init'.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Node config {path} is not valid TOML: {exc}.") from None
    for key in ("data_dir", "dataset_path"):
        if isinstance(raw.get(key), str) and not Path(raw[key]).is_absolute():
            raw[key] = str((path.parent / raw[key]).resolve())
    try:
        return NodeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = field_problems(exc)
        raise ConfigError(f"Node config {path} is invalid: {'; '.join(problems)}.", errors=problems) from None


def write_config(path: Path, config: NodeConfig) -> None:
    lines = []
    for key, value in config.model_dump(exclude_none=True).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(str(value), ensure_ascii=False)}")  # a valid TOML basic string
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
