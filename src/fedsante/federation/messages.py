"""Typed, versioned wire messages of the federation protocol (pydantic).

A task carries data and settings, never code: which algorithm of the node's installed catalogue to
run (id, version and code hash), its parameters and the arrays it needs (the global model). A node's
profile carries its datasets' catalogue entries: names and column types, never a value or a count.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints, model_validator

from fedsante.federation.approval import AlgorithmRef, SignedApproval

__all__ = ["AlgorithmRef", "ArrayPayload", "CatalogueColumn", "CatalogueDataset", "Task", "TaskResult", "pack",
           "unpack"]
PROTOCOL_VERSION = 1
TaskKind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
"""A stage of the generic runner (``feasibility``, ``secagg_*``) or of the algorithm's plan (``fit``...)."""
Scalar = float | int | str | bool


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _control(c: str, allowed: str = "") -> bool:
    return (ord(c) < 32 or 127 <= ord(c) < 160) and c not in allowed


def _one_line(text: str) -> str:
    if any(_control(c) for c in text):
        raise ValueError("must not contain control characters (line breaks, tabs, escapes)")
    return text


def _printable(text: str) -> str:
    if any(_control(c, "\n\t") for c in text):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return text


Name = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_one_line)]
"""A name a node sends (dataset, column, array, metric): 1 to 100 characters, none a control character."""
MAX_CATALOGUE_DATASETS, MAX_CATALOGUE_COLUMNS = 50, 500


class CatalogueColumn(_Message):
    """A column as the desk's catalogue may show it: name, type and a coarse number of distinct values."""

    name: Name
    type: Literal["numeric", "text"]
    distinct: Literal["<= 20 levels", "many"]


class CatalogueDataset(_Message):
    """A dataset a node offers, as its profile publishes it (``fedsante.node.datasets.catalogue_summary``)."""

    name: Name
    description: Annotated[str, Field(max_length=500), AfterValidator(_printable)] = ""
    format: str = Field(pattern=r"^[a-z0-9_-]{1,20}$", description="csv or parquet.")
    columns: list[CatalogueColumn] = Field(max_length=MAX_CATALOGUE_COLUMNS)

    @model_validator(mode="after")
    def _distinct_columns(self) -> CatalogueDataset:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset {self.name!r} names a column twice")
        return self


MAX_ARRAY_VALUES = 5_000_000  # 40 MB of float64: far above any model, statistics or update of the catalogue
MAX_NAMES = 100  # arrays or metrics in one message


class ArrayPayload(_Message):
    """A float64 array as base64 of its little-endian bytes (exact, compact); finite values only.

    >>> nan = base64.b64encode(np.array([1.0, np.nan], dtype="<f8").tobytes()).decode()
    >>> ArrayPayload.model_validate({"shape": [2], "data": nan})
    Traceback (most recent call last):
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ArrayPayload
      Value error, the array holds non-finite values (NaN or infinity) [type=value_error, input_value=..., input_type=dict]
        For further information visit https://errors.pydantic.dev/...
    """

    shape: list[Annotated[int, Field(ge=0, le=MAX_ARRAY_VALUES)]] = Field(max_length=4)
    data: str = Field(max_length=(MAX_ARRAY_VALUES * 8 * 4) // 3 + 4)

    @model_validator(mode="after")
    def _exact_and_finite(self) -> ArrayPayload:
        if int(np.prod(self.shape)) > MAX_ARRAY_VALUES:
            raise ValueError(f"the array has {int(np.prod(self.shape))} values, more than {MAX_ARRAY_VALUES}")
        if not np.all(np.isfinite(self.to_numpy())):
            raise ValueError("the array holds non-finite values (NaN or infinity)")
        return self

    @classmethod
    def of(cls, array: np.ndarray) -> ArrayPayload:
        a = np.ascontiguousarray(array, dtype="<f8")
        return cls(shape=list(a.shape), data=base64.b64encode(a.tobytes()).decode())

    def to_numpy(self) -> np.ndarray:
        try:
            raw = base64.b64decode(self.data, validate=True)
        except ValueError:
            raise ValueError("the array's data is not base64") from None
        expected = int(np.prod(self.shape)) * 8
        if len(raw) != expected:
            raise ValueError(f"Array payload holds {len(raw)} bytes, expected {expected} for shape {self.shape}.")
        return np.frombuffer(raw, dtype="<f8").reshape(self.shape).copy()


def pack(arrays: dict[str, np.ndarray]) -> dict[str, ArrayPayload]:
    return {k: ArrayPayload.of(v) for k, v in arrays.items()}


def unpack(arrays: dict[str, ArrayPayload]) -> dict[str, np.ndarray]:
    return {k: v.to_numpy() for k, v in arrays.items()}


class Task(_Message):
    """What the desk asks one node to compute, under which approval, signed by the desk."""

    protocol: Literal[1] = PROTOCOL_VERSION
    task_id: str
    run_id: str
    node_id: Name  # the recipient: a node refuses a task addressed to another (the desk signs it)
    project: str = ""
    round: int = Field(ge=0)
    kind: TaskKind
    algorithm: AlgorithmRef
    study_sha256: str = ""  # the study schema the task computes on: the approval's, checked by the node
    params: dict[str, Scalar | None] = {}
    arrays: dict[str, ArrayPayload] = {}
    payload: dict[str, Any] = {}  # secure-aggregation messages (see federation/secure.py)
    approval: SignedApproval | None = None
    desk_key_id: str = ""
    desk_signature: str = ""

    def signed_content(self) -> dict:
        return self.model_dump(mode="json", exclude={"desk_signature"})


class TaskResult(_Message):
    """What a node sends back: aggregates only, signed with the node's key."""

    protocol: Literal[1] = PROTOCOL_VERSION
    task_id: Name
    run_id: Name
    node_id: Name
    ok: bool
    error: str | None = Field(None, max_length=4000)
    arrays: dict[Name, ArrayPayload] = Field({}, max_length=MAX_NAMES)
    metrics: dict[Name, FiniteFloat | None] = Field({}, max_length=MAX_NAMES)
    payload: dict[str, Any] = {}
    privacy: dict[str, Any] = {}  # the node's ledger totals for its dataset, after this task
    energy: dict[str, Any] = {}  # CodeCarbon's measure of this task's computation (reports/carbon.py)
    audit_seq: int | None = Field(None, ge=0, le=2**62)
    audit_head: str = ""
    signature: str = ""

    def signed_content(self) -> dict:
        return self.model_dump(mode="json", exclude={"signature"})
