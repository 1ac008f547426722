"""Desk settings, declared once with defaults and help; the CLI and docs read this list."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DeskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(Path("desk-data"), description="Folder for the desk's database, keys and admin token.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/desk.db.")
    host: str = Field("127.0.0.1", description="Address to listen on (loopback by default).")
    port: int = Field(8700, ge=1, le=65535, description="TCP port to listen on.")
    long_poll_max_seconds: float = Field(30.0, gt=0, le=120, description="Longest wait of one node long-poll.")
    round_timeout_seconds: float = Field(30.0, gt=0, le=3600, description="How long a stage waits for every node's reply.")
    node_grace_seconds: float = Field(2.0, gt=0, le=60, description="A node counts as connected this long after its last poll.")
    organisation: str = Field("Guichet IA régional", min_length=1, max_length=200,
                              description="Name of the desk's own organisation (owner of the bootstrap admin).")
    secure_aggregation: bool = Field(True, description="FedAvg rounds by secure aggregation (nodes refuse plain "
                                     "updates unless their operator's policy allows them).")
    allow_exact_runs: bool = Field(False, description="Accept runs with privacy 'none' (benchmarks only; nodes "
                                                      "refuse them unless their policy allows them).")
    release_reviewers: int = Field(2, ge=1, le=5,
                                   description="Reviewers who must release a run's outputs before the holder sees them.")
    audit_retention_days: int = Field(365, ge=180, le=3 * 366,
                                      description="Days the desk keeps audit entries (default 1 year; CNIL: 6 months to 3 years).")
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, le=1024 ** 3,
                                description="Largest request body accepted (JSON, forms), refused with 413 while "
                                            "it streams.")
    max_node_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, le=1024 ** 3,
                                     description="Largest request body accepted under /api/v1/node/ (signed results "
                                                 "with model arrays).")
    objections_per_minute: int = Field(10, ge=1, le=10_000,
                                       description="Objections one client address may submit per minute.")
    withdrawals_per_minute: int = Field(10, ge=1, le=10_000,
                                        description="Withdrawals one client address may ask per minute.")
    receipt_lookups_per_minute: int = Field(30, ge=1, le=10_000,
                                            description="Receipt lookups one client address may make per minute.")
    node_refusals_per_minute: int = Field(30, ge=1, le=10_000,
                                          description="Refusals (task.refused) one node may post per minute.")

    @property
    def audit_path(self) -> Path:
        return self.data_dir / "audit.jsonl"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'desk.db'}"
