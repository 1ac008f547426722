"""The trust report as a person sees it: Debian's chromium driven by Playwright (installed by .ci/run)."""

from __future__ import annotations

import shutil

import pytest

from exact_run import exact  # noqa: F401  (fixture)

from fedsante.reports.render import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def test_trust_report_loads_with_its_plots_and_no_console_error(exact, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    _, _, report = exact
    paths = write_report(report, tmp_path)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            for key in ("html", "html_fr"):
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(paths[key].as_uri(), wait_until="load")
                assert page.locator("figure svg").count() == 3
                assert all(box and box["width"] > 200 for box in
                           (page.locator("figure svg").nth(i).bounding_box() for i in range(3)))
                for heading in (("Performance", "Fairness") if key == "html" else ("Performances", "Équité")):
                    assert page.get_by_role("heading", name=heading, exact=True).is_visible()
                caption = "Performance by age" if key == "html" else "Performances par âge"  # the study's labels
                assert page.get_by_role("table", name=caption).get_by_role("row").count() == 6  # head, 4 bands, gap
                shot = tmp_path / f"{key}.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 50_000
        finally:
            browser.close()
    assert errors == []
