"""The portal as a person sees it: Debian's chromium driven by Playwright, home -> project -> report, an objection."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from live_desk import live  # noqa: F401  (fixture)

from fedsante.data.heart import load_hospital

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def watched(browser, errors: list[str]):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def shot(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000


def test_a_visitor_goes_from_home_to_a_project_and_its_trust_report(live, browser, tmp_path) -> None:
    errors: list[str] = []
    page = watched(browser, errors)
    page.goto(live.url + "/", wait_until="load")
    assert page.get_by_role("heading", level=1).is_visible()
    shot(page, tmp_path / "home.png")
    page.get_by_role("link", name=live.reference).first.click()
    page.wait_for_url(re.compile(f"/projets/{live.reference}$"))
    assert page.get_by_role("heading", name="Autorisation signée").is_visible()
    shot(page, tmp_path / "project.png")
    page.get_by_role("link", name="rapport de confiance").click()
    page.wait_for_url(re.compile("/rapport/"))
    assert page.get_by_role("heading", name="Équité", exact=True).is_visible()
    assert page.locator("figure svg").count() == 3
    shot(page, tmp_path / "report.png")
    page.goto(live.url + "/en/projects", wait_until="load")
    page.get_by_label("hospital").select_option("cleveland")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("status").inner_text() == "1 project(s)"
    assert errors == []


def test_a_patient_objects_with_the_form_and_reads_the_receipt(live, browser, tmp_path) -> None:
    errors: list[str] = []
    page = watched(browser, errors)
    page.goto(live.url + "/opposition", wait_until="load")
    page.get_by_label("hôpital", exact=True).select_option("cleveland")
    page.get_by_label("Votre identifiant à l'hôpital").fill(str(load_hospital("cleveland").patient_id[19]))
    shot(page, tmp_path / "objection.png")
    page.get_by_role("button", name="Envoyer").click()
    page.wait_for_url(re.compile(r"/opposition/[A-Z0-9-]+\?new=1$"))
    code = page.locator(".receipt").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){3}", code)
    assert "Notez ce code" in page.content()
    shot(page, tmp_path / "receipt.png")
    for _ in range(60):  # the node applies it within its poll period
        page.goto(f"{live.url}/opposition/{code}", wait_until="load")
        if "appliquée à Cleveland Clinic Foundation" in page.content():
            break
        page.wait_for_timeout(500)
    assert "appliquée à Cleveland Clinic Foundation" in page.content()
    page.get_by_role("button", name="Retirer mon opposition").click()
    assert page.locator(".status").inner_text() in ("retrait demandé", "retirée")
    assert errors == []


@pytest.mark.parametrize("width", [390, 1280])
def test_the_hospital_page_shows_its_columns_without_horizontal_overflow(live, browser, tmp_path, width) -> None:
    errors: list[str] = []
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(live.url + "/hopitaux/cleveland", wait_until="load")
    assert page.get_by_role("heading", name="Colonnes des jeux de données").is_visible()
    assert page.get_by_role("table", name="Colonnes de cleveland").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page itself never scrolls sideways
    region = page.get_by_role("region", name="Colonnes de cleveland")
    region.focus()  # the table's region takes the keyboard focus, to scroll it if it ever is wider
    assert page.evaluate("document.activeElement.getAttribute('role')") == "region"
    shot(page, tmp_path / f"hospital-{width}.png")
    assert errors == []


def test_the_trust_report_renders_under_the_content_security_policy(live, browser, tmp_path) -> None:
    """The page's <style> block and the inline SVG figures' styles apply; Chromium reports a CSP violation
    as a console error, so none may appear."""
    errors: list[str] = []
    page = watched(browser, errors)
    response = page.goto(f"{live.url}/en/projects/{live.reference}/report/{live.run_id}", wait_until="load")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "style-src 'self' 'unsafe-inline'" in csp
    assert "unsafe-inline" not in next(d for d in csp.split(";") if "script-src" in d)
    assert response.headers["x-frame-options"] == "DENY"
    assert page.evaluate("getComputedStyle(document.querySelector('h2')).borderBottomStyle") == "solid"  # <style>
    figures = page.locator("figure svg")
    assert figures.count() == 3
    box = figures.first.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100
    fills = page.evaluate("[...document.querySelectorAll('figure svg path')].map(p => getComputedStyle(p).fill)")
    assert len(set(fills)) > 1  # the figures' own styles (not all the default black)
    shot(page, tmp_path / "report-csp.png")
    page.goto(f"{live.url}/projets/{live.reference}", wait_until="load")
    assert page.evaluate("getComputedStyle(document.querySelector('header.site')).backgroundColor") == \
        "rgb(11, 61, 107)"
    shot(page, tmp_path / "project-csp.png")
    assert errors == []
