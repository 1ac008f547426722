"""Parameters of each catalogue algorithm: declared once, with defaults, bounds and help."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LogRegParams(BaseModel):
    """Federated logistic regression (defaults tuned on Fed-Heart-Disease, see docs/benchmarks.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(15, ge=1, le=1000, description="Number of FedAvg rounds.")
    local_steps: int = Field(100, ge=1, le=100_000, description="SGD steps at each node per round.")
    lr: float = Field(0.02, gt=0, le=10, description="Local SGD learning rate.")
    batch_size: int = Field(8, ge=0, le=100_000, description="Mini-batch size; 0 means full batch.")
    l2: float = Field(1.0, ge=0, le=1000, description="L2 penalty on the coefficients.")
    server_lr: float = Field(1.0, gt=0, le=10, description="Server step applied to the averaged update.")
    scaling: Literal["global", "local"] = Field(
        "global",
        description="'global': federated means and variances; 'local': each node its own (FLamby protocol).",
    )
    seed: int = Field(42, ge=0, le=2**31 - 1, description="Seed of every node's mini-batch sampler.")
