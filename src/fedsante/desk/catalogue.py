"""The desk's dataset catalogue: each node's datasets with their columns and types, as the node published them.

Nodes publish their catalogue entries with their profile (``PUT /api/v1/node/profile``, see
desk/objections.py); the desk keeps them as validated and never holds a value or a count. Project
holders read it to write their studies (``GET /api/v1/catalogue``, ``fedsante project catalogue``);
the public reads it on each hospital's page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from fedsante.desk.access import ANY_ROLE, Principal
from fedsante.desk.db import Node
from fedsante.desk.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["registry"], responses=ERROR_RESPONSES)
Anyone = Annotated[Principal, Depends(ANY_ROLE)]


def node_catalogue(node: Node) -> list[dict]:
    """The catalogue entries ``node`` published (``name``, ``description``, ``format``, ``columns``)."""
    return list(node.catalogue or [])


def hospital_catalogue(desk, node_id: str) -> list[dict]:
    """The catalogue entries of one node (empty if it is unknown or has published none)."""
    with desk.sessions() as session:
        node = session.get(Node, node_id)
        return node_catalogue(node) if node is not None else []


def catalogue_list(desk) -> list[dict]:
    """Every node with its hospital's name and territory and its catalogue entries (empty until published)."""
    with desk.sessions() as session:
        return [{"node_id": n.id, "hospital_name": n.hospital_name or n.id, "territory": n.territory,
                 "datasets": node_catalogue(n)} for n in session.scalars(select(Node).order_by(Node.id))]


@router.get("/catalogue")
def get_catalogue(request: Request, _who: Anyone) -> list[dict]:
    """The datasets each hospital's node offers, with each column's name, type (numeric or text) and number of
    distinct values (<= 20 levels or many): what a study can map its variables onto. No value, no count."""
    return catalogue_list(request.app.state.desk)
