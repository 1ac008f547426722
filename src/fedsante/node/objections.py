"""Patient objections at the node: pulled from the desk, opened, kept as keyed hashes, applied to every cohort.

The node publishes its X25519 objection key to the desk with the names of the datasets it offers and
their catalogue entries (columns and types, no value, no count: a signed request, its "profile"), once
per process and again whenever the profile changes, then at each poll pulls
the objections and withdrawals sealed to that key, opens them, and keeps only a keyed hash of each
identifier (:func:`fedsante.privacy.objections.keyed_hash`, under a secret that never leaves the node)
in its objection table, ``objections.json``. Before the first task of every run it builds the run's
cohort without the patients whose identifier hashes to a stored value, and records in its audit chain
how many it excluded. The identifiers themselves are never written anywhere.

A burst (more new objections in one refresh than the policy's ``objection_burst_limit``) is not applied:
the node leaves it sealed at the desk, lists the objection ids in ``objections_held.json``, records
``objections.held`` in its chain, and holds every newer objection with it until the operator confirms
(``fedsante node objections confirm``, :meth:`Objections.refresh` with ``confirmed_by``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from nacl.public import PrivateKey

from fedsante.audit import AuditLog
from fedsante.common.errors import ConfigError, DataError, FedsanteError
from fedsante.data.cohort import Cohort
from fedsante.data.sources import RawTable
from fedsante.federation.auth import sign_request
from fedsante.federation.messages import CatalogueDataset
from fedsante.node.policy import NodePolicy, load_policy
from fedsante.node.replies import raise_for_status
from fedsante.privacy.objections import (generate_box_key, keyed_hash, load_box_key, load_hash_key,
                                         normalise_birth_date, open_objection, public_b64)

PROFILE_PATH, PENDING_PATH, APPLIED_PATH = "/api/v1/node/profile", "/api/v1/node/objections", \
    "/api/v1/node/objections/applied"
log = logging.getLogger("fedsante.node")
DEFAULT_BURST_LIMIT = NodePolicy.model_fields["objection_burst_limit"].default


def policy_burst_limit(path: Path) -> Callable[[], int]:
    """The policy's ``objection_burst_limit``, re-read at each call (the default while the policy is unreadable)."""
    def limit() -> int:
        try:
            return load_policy(Path(path)).objection_burst_limit
        except ConfigError as exc:
            log.warning("objection burst limit: %s; using %d", exc, DEFAULT_BURST_LIMIT)
            return DEFAULT_BURST_LIMIT
    return limit


def policy_birth_dates(path: Path, raw: Callable[[], RawTable]) -> Callable[[], dict[str, str | None] | None]:
    """Each patient's date of birth from the dataset column the policy names, when the policy's
    ``objection_second_factor`` is ``"birth_date"``; None otherwise (or without a policy yet)."""
    def birth_dates() -> dict[str, str | None] | None:
        if not Path(path).exists():
            return None
        policy = load_policy(Path(path))
        if policy.objection_second_factor == "none":
            return None
        table, column = raw(), policy.objection_birth_date_column
        if column not in table.columns:
            raise DataError(f"The node policy {path} checks each objection against the patient's date of birth "
                            f"(objection_second_factor), but the dataset has no column {column!r}; set "
                            "objection_birth_date_column to the column that holds it.")
        return {str(pid): _birth_date_or_none(value) for pid, value in zip(table.patient_id, table.columns[column])}
    return birth_dates


def _birth_date_or_none(value: str | None) -> str | None:
    try:
        return normalise_birth_date(value) if value else None
    except DataError:
        return None


def _write_private(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


class ObjectionTable:
    """The node's objections in force: objection id -> keyed hash of the identifier (a JSON file, mode 0600)."""

    def __init__(self, path: Path, hash_key: bytes) -> None:
        self.path, self.hash_key = Path(path), hash_key
        self.reload()

    def reload(self) -> None:
        """Read the table again (another process, ``objections confirm``, may have changed it)."""
        self._rows: dict[str, dict] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, objection_id: str) -> bool:
        return objection_id in self._rows

    def add(self, objection_id: str, identifier: str, birth_date: str | None = None) -> None:
        """Keep the keyed hash of the identifier, and of the date of birth when the patient gave one."""
        self._rows[objection_id] = {"hash": keyed_hash(self.hash_key, identifier),
                                    "applied_at": datetime.now(UTC).isoformat()}
        if birth_date:
            self._rows[objection_id]["birth_hash"] = keyed_hash(self.hash_key, normalise_birth_date(birth_date))

    def remove(self, objection_id: str) -> None:
        self._rows.pop(objection_id, None)

    def save(self) -> None:
        _write_private(self.path, self._rows)

    def excluded(self, table: Cohort, birth_dates: dict[str, str | None] | None = None) -> set[str]:
        """Patient ids of ``table`` under an objection.

        With ``birth_dates`` (patient id -> date of birth in the dataset; the second factor), only the patients
        whose identifier and date of birth both match an objection.
        """
        if birth_dates is None:
            hashes = {row["hash"] for row in self._rows.values()}
            return {pid for pid in map(str, table.patient_id) if keyed_hash(self.hash_key, pid) in hashes}
        pairs = {(row["hash"], row["birth_hash"]) for row in self._rows.values() if "birth_hash" in row}
        return {pid for pid in map(str, table.patient_id)
                if birth_dates.get(pid) and (keyed_hash(self.hash_key, pid),
                                             keyed_hash(self.hash_key, birth_dates[pid])) in pairs}


@dataclass
class Objections:
    """A node's side of objections: its keys and table, and the signed calls to the desk."""

    node_id: str
    signing_key: object  # the node's Ed25519 key (signs requests)
    box_key: PrivateKey
    table: ObjectionTable
    audit: AuditLog
    datasets: list[str] = field(default_factory=list)  # published with the key, for the hospital's public page
    catalogue: Callable[[], list[CatalogueDataset]] = list  # their entries, re-read before each publication
    burst_limit: Callable[[], int] = lambda: DEFAULT_BURST_LIMIT  # most new objections applied without confirmation
    birth_dates: Callable[[], dict[str, str | None] | None] = lambda: None  # the second factor, None: not asked
    published: dict | None = field(default=None, init=False)  # the profile the desk last accepted
    newly_held: int = field(default=0, init=False)  # objections the last refresh held (not applied) for the first time
    _entries: list[dict] = field(default_factory=list, init=False)  # the last catalogue read

    @classmethod
    def open(cls, data_dir: Path, node_id: str, signing_key, audit: AuditLog, datasets: list[str] = (),
             catalogue: Callable[[], list[CatalogueDataset]] = list,
             burst_limit: Callable[[], int] | None = None,
             birth_dates: Callable[[], dict[str, str | None] | None] | None = None) -> Objections:
        """The node's objection keys (created on first use) and table, under its data directory.

        ``catalogue`` returns the catalogue entries of ``datasets`` (e.g. ``node.datasets.catalogue_entries``);
        ``burst_limit`` the policy's ``objection_burst_limit`` (:func:`policy_burst_limit`; default 20);
        ``birth_dates`` each patient's date of birth when the policy asks for that second factor, else None.
        """
        data_dir = Path(data_dir)
        box_path = data_dir / "objection_box_key"
        box_key = load_box_key(box_path) if box_path.exists() else generate_box_key(box_path)
        table = ObjectionTable(data_dir / "objections.json", load_hash_key(data_dir / "objection_hash_key"))
        return cls(node_id, signing_key, box_key, table, audit, list(datasets), catalogue,
                   burst_limit or (lambda: DEFAULT_BURST_LIMIT), birth_dates or (lambda: None))

    @property
    def held_path(self) -> Path:
        return self.table.path.with_name("objections_held.json")

    def held(self) -> dict[str, str]:
        """Objections held for the operator's confirmation: objection id -> when first held."""
        return json.loads(self.held_path.read_text(encoding="utf-8")) if self.held_path.exists() else {}

    def _save_held(self, held: dict[str, str]) -> None:
        if held:
            _write_private(self.held_path, held)
        else:
            self.held_path.unlink(missing_ok=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One refresh at a time over the data directory (the serving node and ``objections confirm``)."""
        fd = os.open(self.table.path.with_name("objections.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def profile(self) -> dict:
        """What the node publishes: its objection key, its datasets and their catalogue entries.

        A catalogue that cannot be read now (a file replaced while serving) keeps its last entries, so that
        objections keep flowing; the problem is logged.
        """
        try:
            self._entries = [entry.model_dump() for entry in self.catalogue()]
        except FedsanteError as exc:
            log.warning("node %s: catalogue not refreshed, the desk keeps the last one (%s)", self.node_id, exc)
        return {"objection_key": public_b64(self.box_key), "datasets": self.datasets, "catalogue": self._entries}

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, body: dict | None = None) -> dict:
        content = json.dumps(body).encode() if body is not None else b""
        headers = sign_request(self.signing_key, self.node_id, method, path, content)
        if content:
            headers["content-type"] = "application/json"
        response = await client.request(method, path, content=content, headers=headers)
        raise_for_status(response)
        return response.json()

    async def refresh(self, client: httpx.AsyncClient, *, confirmed_by: str | None = None) -> tuple[int, int]:
        """Publish the profile (once, then when it changed), apply new objections and withdrawals;
        return ``(added, removed)``.

        More new objections than ``burst_limit()`` are held, none of them applied: they stay sealed at the
        desk, listed in ``objections_held.json``, and every newer one joins them while the hold lasts.
        ``confirmed_by`` (the operator) applies the held ones; withdrawals are never held.
        """
        profile = self.profile()
        if profile != self.published:
            await self._call(client, "PUT", PROFILE_PATH, profile)
            self.published = profile
        with self._locked():
            self.table.reload()
            pending = (await self._call(client, "GET", PENDING_PATH))["pending"]
            held, limit = self.held(), self.burst_limit()
            new = [item for item in pending if item["action"] == "object" and item["id"] not in self.table]
            approved = [item for item in new if confirmed_by is not None and item["id"] in held]
            rest = [item for item in new if confirmed_by is None or item["id"] not in held]
            hold = len(rest) > limit or any(item["id"] in held for item in rest)
            now = datetime.now(UTC).isoformat()
            still_held = {item["id"]: held.get(item["id"], now) for item in rest} if hold else {}
            self.newly_held = len(still_held.keys() - held.keys())
            added, removed = await self._apply(client, approved + ([] if hold else rest),
                                               [item for item in pending if item["action"] == "withdraw"])
            if self.newly_held:
                self.audit.append(self.node_id, "objections.held", self.node_id,
                                  {"new": self.newly_held, "held": len(still_held), "limit": limit})
            if confirmed_by is not None:
                self.audit.append(self.node_id, "objections.confirmed", self.node_id,
                                  {"operator": confirmed_by, "confirmed": len(approved), "in_force": len(self.table)})
            if still_held != held:
                self._save_held(still_held)
        return added, removed

    async def _apply(self, client: httpx.AsyncClient, objects: list[dict], withdrawals: list[dict]) -> tuple[int, int]:
        done, added, removed = [], 0, 0
        for item in objects:
            try:
                self.table.add(item["id"], *open_objection(self.box_key, item["ciphertext"]))
            except DataError as exc:  # not for this key: leave it pending, say so in the chain
                self.audit.append(self.node_id, "objection.unreadable", item["id"][:16], {"reason": str(exc)})
                continue
            added += 1
            done.append({"id": item["id"], "action": "object"})
        for item in withdrawals:
            self.table.remove(item["id"])
            removed += 1
            done.append({"id": item["id"], "action": "withdraw"})
        if done:
            self.table.save()
            self.audit.append(self.node_id, "objections.applied", self.node_id,
                              {"added": added, "withdrawn": removed, "in_force": len(self.table)})
            await self._call(client, "POST", APPLIED_PATH, {"applied": done})
        return added, removed

    def cohort(self, base: Cohort, run_id: str) -> Cohort:
        """The run's cohort: ``base`` without the patients under an objection, counted in the audit chain."""
        self.table.reload()  # as 'objections confirm' may have left it
        excluded = self.table.excluded(base, self.birth_dates())
        cohort = base.without(excluded) if excluded else base
        self.audit.append(self.node_id, "cohort.built", run_id, {"patients": len(cohort.y), "excluded": len(excluded)})
        return cohort
