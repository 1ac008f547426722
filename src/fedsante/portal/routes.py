"""The portal's routes, served by the desk: French at the root, English under /en, a JSON twin for each data page.

Pages are server-rendered (Jinja2), work without JavaScript and use plain forms. The objection form
posts the identifier to the desk, which seals it to the hospital's key at once
(:mod:`fedsante.desk.objections`), then redirects to the receipt page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from fedsante.common.errors import Conflict, DataError, FedsanteError, NotFound, TooManyRequests
from fedsante.desk import objections
from fedsante.portal import data, opendata
from fedsante.portal.present import registry_rows
from fedsante.portal.schema import json_schema
from fedsante.portal.texts import PATHS, STATUS, T
from fedsante.privacy.objections import normalise_birth_date
from fedsante.reports.render import render_html
from fedsante.reports.trust import build_report

router = APIRouter(include_in_schema=False)
_env = Environment(loader=PackageLoader("fedsante.portal", "templates"), autoescape=select_autoescape())
MAX_FORM = 4096  # bytes of an objection form


def url(lang: str, page: str, **params: str) -> str:
    """The path of ``page`` in ``lang`` (parameters quoted).

    >>> url("en", "project", reference="RAIH-2026-0001"), url("fr", "home")
    ('/en/projects/RAIH-2026-0001', '/')
    """
    return PATHS[page][lang].format(**{k: quote(str(v), safe="") for k, v in params.items()})


def json_path(path: str) -> str:
    """The JSON twin of a page path.

    >>> json_path("/"), json_path("/en/"), json_path("/projets/{reference}")
    ('/index.json', '/en/index.json', '/projets/{reference}.json')
    """
    return "/index.json" if path == "/" else "/en/index.json" if path == "/en/" else path + ".json"


def _num(value, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def render(lang: str, template: str, page: str, params: dict, d: dict, *, status: int = 200, json: bool = True,
           **extra) -> HTMLResponse:
    """One page in ``lang``, with links to the same page in the other language and to its JSON twin."""
    other = "en" if lang == "fr" else "fr"
    html = _env.get_template(template).render(
        lang=lang, t=T[lang], s=STATUS[lang], d=d, url=lambda name, **p: url(lang, name, **p),
        other_url=url(other, page, **params), json_url=json_path(url(lang, page, **params)) if json else None,
        num=_num, sci=lambda v: "—" if v is None else f"{v:.3g}", registry=lambda spec: registry_rows(spec, lang),
        **extra)
    return HTMLResponse(html, status_code=status)


def _page(lang: str, page: str, template: str, params: dict, load: Callable[[], dict], *, json: bool = True,
          **extra) -> HTMLResponse:
    try:
        return render(lang, template, page, params, load(), json=json, **extra)
    except NotFound as exc:
        return _not_found(lang, exc)


def _not_found(lang: str, exc: NotFound) -> HTMLResponse:
    return render(lang, "error.html", "home", {}, {}, status=404, json=False, heading=T[lang]["not_found"],
                  message=exc.message)


def _register(lang: str) -> None:
    """Every page in ``lang``; JSON twins first, since ``/projets/{reference}`` would also match ``X.json``."""
    p = {name: paths[lang] for name, paths in PATHS.items()}

    @router.get(json_path(p["home"]))
    def home_json(request: Request) -> JSONResponse:
        return JSONResponse(data.home(request.app.state.desk))

    @router.get(json_path(p["projects"]))
    def projects_json(request: Request) -> JSONResponse:
        return JSONResponse(data.projects(request.app.state.desk, dict(request.query_params)))

    @router.get(json_path(p["project"]))
    def project_json(request: Request, reference: str) -> JSONResponse:
        return JSONResponse(data.project(request.app.state.desk, reference))

    @router.get(json_path(p["hospital"]))
    def hospital_json(request: Request, node_id: str) -> JSONResponse:
        return JSONResponse(data.hospital(request.app.state.desk, node_id))

    @router.get(json_path(p["verify"]))
    def verify_json(request: Request) -> JSONResponse:
        return JSONResponse(data.verify(request.app.state.desk))

    @router.get(p["verify"])
    def verify(request: Request) -> HTMLResponse:
        return _page(lang, "verify", "verify.html", {}, lambda: data.verify(request.app.state.desk),
                     base=_base(request))

    @router.get(p["home"])
    def home(request: Request) -> HTMLResponse:
        return _page(lang, "home", "home.html", {}, lambda: data.home(request.app.state.desk))

    @router.get(p["projects"])
    def projects(request: Request) -> HTMLResponse:
        return _page(lang, "projects", "projects.html", {},
                     lambda: data.projects(request.app.state.desk, dict(request.query_params)))

    @router.get(p["project"])
    def project(request: Request, reference: str) -> HTMLResponse:
        return _page(lang, "project", "project.html", {"reference": reference},
                     lambda: data.project(request.app.state.desk, reference))

    @router.get(p["hospital"])
    def hospital(request: Request, node_id: str) -> HTMLResponse:
        return _page(lang, "hospital", "hospital.html", {"node_id": node_id},
                     lambda: data.hospital(request.app.state.desk, node_id))

    @router.get(p["report"])
    def report(request: Request, reference: str, run_id: str) -> HTMLResponse:
        try:
            run, nodes, spec = data.released_run(request.app.state.desk, reference, run_id)
        except NotFound as exc:
            return _not_found(lang, exc)
        return HTMLResponse(render_html(build_report(run, nodes, spec, k_min=int(spec.get("k_min") or 11)), lang))

    @router.get(p["rights"])
    def rights(request: Request) -> HTMLResponse:
        return render(lang, "rights.html", "rights", {}, data.rights(request.app.state.desk), json=False)

    @router.get(p["objection"])
    def objection_form(request: Request) -> HTMLResponse:
        return render(lang, "objection.html", "objection", {},
                      {"hospitals": objections.hospital_list(request.app.state.desk)}, json=False)

    @router.post(p["objection"])
    async def objection_post(request: Request):
        desk = request.app.state.desk
        body = (await request.body())[:MAX_FORM]
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        try:
            if form.get("birth_date", "").strip():
                normalise_birth_date(form["birth_date"])
        except DataError:
            return render(lang, "objection.html", "objection", {}, {"hospitals": objections.hospital_list(desk)},
                          status=422, json=False, error=T[lang]["err_birth_date"])
        try:
            receipt, _ = objections.submit(desk, form.get("hospital", ""), form.get("identifier", ""),
                                           request.client.host if request.client else "", form.get("birth_date"))
        except FedsanteError as exc:
            message = T[lang][{NotFound: "err_hospital", Conflict: "err_unavailable",
                                TooManyRequests: "err_too_many"}.get(type(exc), "err_identifier")]
            return render(lang, "objection.html", "objection", {}, {"hospitals": objections.hospital_list(desk)},
                          status=exc.status, json=False, error=message)
        return RedirectResponse(url(lang, "receipt", receipt=receipt) + "?new=1", status_code=303)

    @router.get(p["receipt"])
    def receipt(request: Request, receipt: str) -> HTMLResponse:
        return _page(lang, "receipt", "receipt.html", {"receipt": receipt},
                     lambda: objections.status(request.app.state.desk, receipt, _address(request)), json=False,
                     receipt=receipt, fresh=request.query_params.get("new") == "1")

    @router.post(p["receipt"])
    def withdraw(request: Request, receipt: str) -> RedirectResponse:
        try:
            objections.withdraw(request.app.state.desk, receipt, _address(request))
        except NotFound:
            pass  # the receipt page says so
        return RedirectResponse(url(lang, "receipt", receipt=receipt), status_code=303)


for _lang in ("fr", "en"):
    _register(_lang)

@router.get("/schemas/portal.json")
def portal_schema() -> JSONResponse:
    """The JSON Schema of every page's JSON twin (docs/portal.md)."""
    return JSONResponse(json_schema())


@router.get("/registre.csv")
def registry_csv(request: Request) -> Response:
    """The registry with the HDH répertoire's columns (docs/portal.md)."""
    text = opendata.registry_csv(request.app.state.desk, _base(request))
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="registre-fedsante.csv"'})


@router.get("/registre.dcat.json")
def registry_dcat(request: Request) -> JSONResponse:
    return JSONResponse(opendata.registry_dcat(request.app.state.desk, _base(request)),
                        media_type="application/ld+json")


@router.get("/flux.atom")
def feed(request: Request) -> Response:
    return Response(opendata.atom_feed(request.app.state.desk, _base(request)), media_type="application/atom+xml")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
           'fill="#0b3d6b"/><path d="M4 4h8v2H6v2h5v2H6v3H4z" fill="#fff"/></svg>')


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"})


def _address(request: Request) -> str:
    """The caller's address, the key of the desk's shared rate limits."""
    return request.client.host if request.client else ""
