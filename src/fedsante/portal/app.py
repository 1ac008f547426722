"""The desk service with the public portal on top: what ``fedsante desk serve`` runs.

The portal sits above the desk: it reads the desk's database and posts objections through the desk's
code, so the desk's application (:func:`fedsante.desk.app.create_app`, the API under /api/v1) never
imports it. This factory builds that application and adds the portal's pages (French at /, English
under /en, a JSON twin for each data page, the open-data files).
"""

from __future__ import annotations

from fastapi import FastAPI

from fedsante.desk.app import create_app as create_desk_app
from fedsante.desk.settings import DeskSettings
from fedsante.portal.routes import router


def create_app(settings: DeskSettings | None = None, *, admin_token: str | None = None) -> FastAPI:
    """Build the desk application with the portal's routes (the arguments are the desk's)."""
    app = create_desk_app(settings, admin_token=admin_token)
    app.include_router(router)
    return app
