"""Patient objections at the desk: sealed on arrival, relayed to the hospital's node, tracked by receipt.

The desk seals the identifier to the hospital's objection key as soon as it arrives and stores only
the ciphertext, which it drops once the node has applied the objection. The patient keeps a receipt
code; the desk stores only its SHA-256. Public routes (no account): submit, status, withdraw.
Node routes (signed by the node's key): publish its profile (objection key, datasets offered and their
catalogue entries), pull pending objections and withdrawals, acknowledge what it applied.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import func, select

from fedsante.common.errors import Conflict, InvalidInput, NotFound, field_problems
from fedsante.common.keys import canonical_json, sha256_hex
from fedsante.desk import limits
from fedsante.desk.db import Node, Objection, utcnow
from fedsante.desk.node_routes import authenticate, parse_body
from fedsante.desk.schemas import ERROR_RESPONSES
from fedsante.federation.messages import MAX_CATALOGUE_DATASETS, CatalogueDataset
from fedsante.privacy.objections import (MAX_IDENTIFIER, new_receipt, normalise, normalise_birth_date,
                                         parse_box_public_key, receipt_id, seal)

public = APIRouter(prefix="/api/v1/objections", tags=["public"], responses=ERROR_RESPONSES)
hospitals = APIRouter(prefix="/api/v1", tags=["public"], responses=ERROR_RESPONSES)
node = APIRouter(prefix="/api/v1/node", tags=["node protocol"], responses=ERROR_RESPONSES)


class ObjectionIn(BaseModel):
    hospital: str = Field(min_length=1, max_length=64, description="The hospital's node id (see /api/v1/hospitals).")
    identifier: str = Field(min_length=1, max_length=MAX_IDENTIFIER,
                            description="The identifier the hospital knows the patient by; sealed on arrival.")
    birth_date: str | None = Field(None, max_length=10, description=(
        "The patient's date of birth, YYYY-MM-DD (optional): sealed with the identifier; a hospital that asks "
        "for it applies the objection only when both match its record."))


class ProfileIn(BaseModel):
    """A node's profile, hostile input: every field bounded, unknown fields refused."""

    model_config = ConfigDict(extra="forbid")

    objection_key: str = Field(min_length=40, max_length=64, description="Base64 of the node's X25519 public key.")
    datasets: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        [], max_length=MAX_CATALOGUE_DATASETS,
        description="Names of the datasets the node offers (shown on the hospital's public page).")
    catalogue: list[CatalogueDataset] = Field(
        [], max_length=MAX_CATALOGUE_DATASETS,
        description="Columns and types of the datasets offered (the desk's catalogue); never a value or a count.")

    @field_validator("catalogue")
    @classmethod
    def _catalogue_of_offered_datasets(cls, catalogue: list[CatalogueDataset], info: ValidationInfo):
        names = [entry.name for entry in catalogue]
        if len(set(names)) != len(names) or not set(names) <= set(info.data.get("datasets", [])):
            raise ValueError("each entry must describe a different dataset named in 'datasets'")
        return catalogue


def parse_profile(body: bytes) -> ProfileIn:
    """The profile in ``body``, else InvalidInput (422) naming each field at fault (never echoing the input)."""
    try:
        return ProfileIn.model_validate_json(body)
    except ValidationError as exc:
        problems = field_problems(exc)
        raise InvalidInput(f"Invalid node profile: {'; '.join(problems[:10])}"
                           + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""),
                           errors=problems[:100]) from None


class Applied(BaseModel):
    id: str = Field(min_length=64, max_length=64)
    action: Literal["object", "withdraw"]


class AppliedIn(BaseModel):
    applied: list[Applied] = Field(max_length=10_000)


def submit(desk, hospital: str, identifier: str, client: str = "",
           birth_date: str | None = None) -> tuple[str, dict]:
    """Seal and store an objection (with the date of birth, if given); return the receipt code (shown once)
    and its status.

    ``client`` (the caller's address) may submit at most ``objections_per_minute`` per minute (every worker).
    """
    per_minute = desk.settings.objections_per_minute
    limits.check(desk, limits.client_key("objection", client), per_minute,
                 f"Too many objections from this address: at most {per_minute} per minute. Wait a minute and try again.")
    identifier = normalise(identifier)
    birth_date = normalise_birth_date(birth_date) if birth_date and birth_date.strip() else None
    with desk.sessions() as session:
        row = session.get(Node, hospital)
        if row is None:
            raise NotFound(f"Hospital {hospital!r} is not part of this network; see /api/v1/hospitals.")
        if row.objection_key is None:
            raise Conflict(f"Hospital {hospital!r} cannot receive objections yet: its node has not published its key.")
        receipt = new_receipt()
        objection = Objection(id=receipt_id(receipt), node_id=hospital,
                              ciphertext=seal(row.objection_key, identifier, birth_date))
        session.add(objection)
        session.commit()
        out = _status(objection, row)
    desk.record("public", "objection.received", objection.id[:16], {"hospital": hospital})
    return receipt, out


def status(desk, receipt: str, client: str | None = None) -> dict:
    """Where an objection stands; ``client`` (unless None) may look up ``receipt_lookups_per_minute`` a minute."""
    if client is not None:
        per_minute = desk.settings.receipt_lookups_per_minute
        limits.check(desk, limits.client_key("receipt", client), per_minute,
                     f"Too many receipt lookups from this address: at most {per_minute} per minute. "
                     "Wait a minute and try again.")
    with desk.sessions() as session:
        objection = session.get(Objection, receipt_id(receipt))
        if objection is None:
            raise NotFound("No objection has this receipt code. Check it as written on your receipt.")
        return _status(objection, session.get(Node, objection.node_id))


def withdraw(desk, receipt: str, client: str | None = None) -> dict:
    """Withdraw an objection: at once if the node has not seen it, otherwise once the node removes it.

    ``client`` (unless None) may ask ``withdrawals_per_minute`` withdrawals a minute.
    """
    if client is not None:
        per_minute = desk.settings.withdrawals_per_minute
        limits.check(desk, limits.client_key("withdrawal", client), per_minute,
                     f"Too many withdrawals from this address: at most {per_minute} per minute. "
                     "Wait a minute and try again.")
    with desk.sessions() as session:
        objection = session.get(Objection, receipt_id(receipt))
        if objection is None:
            raise NotFound("No objection has this receipt code. Check it as written on your receipt.")
        if objection.status == "received":
            objection.status, objection.ciphertext, objection.withdrawn_at = "withdrawn", None, utcnow()
        elif objection.status == "applied":
            objection.status = "withdrawal_requested"
        session.commit()
        out = _status(objection, session.get(Node, objection.node_id))
    desk.record("public", "objection.withdrawal", objection.id[:16], {"hospital": objection.node_id})
    return out


def applied_counts(desk) -> dict[str, int]:
    """Objections in force at each hospital (applied, not withdrawn); publish them only at k_min or more."""
    with desk.sessions() as session:
        rows = session.execute(select(Objection.node_id, func.count()).where(
            Objection.status.in_(("applied", "withdrawal_requested"))).group_by(Objection.node_id))
        return {node_id: int(count) for node_id, count in rows}


def _status(objection: Objection, hospital: Node | None) -> dict:
    def iso(value):
        return value.isoformat() if value else None

    return {"status": objection.status, "hospital": objection.node_id,
            "hospital_name": hospital.hospital_name if hospital else "", "received_at": iso(objection.created_at),
            "applied_at": iso(objection.applied_at), "withdrawn_at": iso(objection.withdrawn_at)}


def hospital_list(desk) -> list[dict]:
    """Every hospital of the network, whether it can receive objections, and how many are in force there
    (None under the charter's k_min, so that no small count is published)."""
    counts, k_min = applied_counts(desk), desk.charter.policy.k_min_floor
    with desk.sessions() as session:
        return [{"id": n.id, "name": n.hospital_name or n.id, "territory": n.territory,
                 "accepts_objections": n.objection_key is not None, "datasets": n.datasets or [],
                 "objections_in_force": counts.get(n.id, 0) if counts.get(n.id, 0) >= k_min else None}
                for n in session.scalars(select(Node).order_by(Node.id))]


@hospitals.get("/hospitals")
def get_hospitals(request: Request) -> list[dict]:
    """The hospitals of the network (public): name, territory, objections accepted and in force (>= k_min)."""
    return hospital_list(request.app.state.desk)


@public.post("", status_code=201)
def post_objection(body: ObjectionIn, request: Request) -> dict:
    """Object to the use of your data by one hospital. Keep the receipt code: it shows when the objection is
    applied and lets you withdraw it. The identifier is sealed to the hospital's key before it is stored."""
    receipt, out = submit(request.app.state.desk, body.hospital, body.identifier, _client(request),
                          body.birth_date)
    return {"receipt": receipt, **out}


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


@public.get("/{receipt}")
def get_objection(receipt: str, request: Request) -> dict:
    """Where an objection stands: received, applied at the hospital (with the date), or withdrawn."""
    return status(request.app.state.desk, receipt, _client(request))


@public.post("/{receipt}/withdraw")
def post_withdrawal(receipt: str, request: Request) -> dict:
    """Withdraw an objection; the hospital includes the patient again once its node has applied the withdrawal."""
    return withdraw(request.app.state.desk, receipt, _client(request))


@node.put("/profile")
async def put_profile(request: Request) -> dict:
    """A node publishes the X25519 key that patients' identifiers are sealed to, the datasets it offers and
    their catalogue entries (columns and types)."""
    node_id, _, body = await authenticate(request)
    profile = parse_profile(body)
    parse_box_public_key(profile.objection_key)
    catalogue = [entry.model_dump() for entry in profile.catalogue]
    desk = request.app.state.desk
    with desk.sessions() as session:
        row = session.get(Node, node_id)
        changed = (row.objection_key, row.datasets, row.catalogue) != (profile.objection_key, profile.datasets,
                                                                       catalogue)
        row.objection_key, row.datasets, row.catalogue = profile.objection_key, profile.datasets, catalogue
        session.commit()
    if changed:  # the catalogue itself is public on the hospital's page; the chain keeps its digest
        desk.record(node_id, "node.profile", node_id, {
            "objection_key": profile.objection_key, "datasets": profile.datasets,
            "catalogue_sha256": sha256_hex(canonical_json(catalogue)),
            "columns": {entry.name: len(entry.columns) for entry in profile.catalogue}})
    return {"ok": True}


@node.get("/objections")
async def pending_objections(request: Request) -> dict:
    """Objections and withdrawals this node has not applied yet (identifiers sealed to its key)."""
    node_id, _, _ = await authenticate(request)
    with request.app.state.desk.sessions() as session:
        rows = session.scalars(select(Objection).where(
            Objection.node_id == node_id, Objection.status.in_(("received", "withdrawal_requested")))
            .order_by(Objection.created_at))
        return {"pending": [{"id": o.id, "action": "object" if o.status == "received" else "withdraw",
                             "ciphertext": o.ciphertext} for o in rows]}


@node.post("/objections/applied")
async def objections_applied(request: Request) -> dict:
    """The node applied these objections and withdrawals; the desk drops their ciphertexts and dates them."""
    node_id, _, body = await authenticate(request)
    items = parse_body(AppliedIn, body).applied
    desk = request.app.state.desk
    done = 0
    with desk.sessions() as session:
        for item in items:
            objection = session.get(Objection, item.id)
            if objection is None or objection.node_id != node_id:
                continue
            if item.action == "object" and objection.status == "received":
                objection.status, objection.ciphertext, objection.applied_at = "applied", None, utcnow()
            elif item.action == "withdraw" and objection.status == "withdrawal_requested":
                objection.status, objection.withdrawn_at = "withdrawn", utcnow()
            else:
                continue
            done += 1
        session.commit()
    if done:
        desk.record(node_id, "objections.applied", node_id, {"count": done})
    return {"applied": done}
