"""A node's configuration file (TOML), validated; unknown or missing settings are refused by name."""

from __future__ import annotations

import json
import ssl
import tomllib
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fedsante.common.errors import ConfigError, field_problems
from fedsante.common.tls import is_loopback, pinned_context


class NodeConfig(BaseModel):
    """Settings of one hospital node."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="Node identifier registered at the desk.")
    desk_url: str = Field(pattern=r"^https?://", description="Base URL of the desk, e.g. https://desk.example:8700 "
                                                            "(http:// only on loopback).")
    desk_ca: Path | None = Field(None, description="The desk's CA certificate (PEM) to pin; unset: the system's "
                                                   "trust store (a desk behind a proxy with a public certificate).")
    allow_insecure_http: bool = Field(False, description="Allow http:// to a desk that is not on this machine "
                                                         "(tests in private networks only: tokens and results "
                                                         "would travel in clear).")
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

    @model_validator(mode="after")
    def _transport(self) -> NodeConfig:
        url = httpx.URL(self.desk_url)
        if url.scheme == "http" and not is_loopback(url.host) and not self.allow_insecure_http:
            raise ValueError(f"desk_url {self.desk_url} is plain http:// to another machine; use https:// (and "
                             "'desk_ca' to pin the desk's CA), or set allow_insecure_http = true for a test network")
        return self

    def verify(self) -> ssl.SSLContext | bool:
        """What the node's HTTP client verifies the desk's certificate with: the pinned CA, or the system's."""
        return pinned_context(self.desk_ca) if self.desk_ca is not None else True

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
    for key in ("data_dir", "dataset_path", "desk_ca"):
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
        if isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(str(value), ensure_ascii=False)}")  # a valid TOML basic string
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
