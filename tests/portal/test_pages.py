"""The public portal over HTTP: every page in French and English, its JSON twin, filters, 404s, the objection form."""

from __future__ import annotations

import re

import httpx
import pytest
from live_desk import live  # noqa: F401  (fixture)

from fedsante.data.heart import load_hospital

pytestmark = pytest.mark.e2e


def get(live, path: str, **kwargs) -> httpx.Response:
    return httpx.get(live.url + path, timeout=20, **kwargs)


@pytest.mark.parametrize("fr, en", [("/", "/en/"), ("/projets", "/en/projects"), ("/vos-droits", "/en/your-rights"),
                                    ("/opposition", "/en/objection"), ("/hopitaux/cleveland", "/en/hospitals/cleveland")])
def test_each_page_exists_in_french_and_english_and_links_to_the_other(live, fr: str, en: str) -> None:
    french, english = get(live, fr), get(live, en)
    assert french.status_code == english.status_code == 200
    assert '<html lang="fr">' in french.text and '<html lang="en">' in english.text
    assert f'href="{en}"' in french.text and f'href="{fr}"' in english.text


def test_home_figures_and_the_project_page_with_its_approval_runs_and_report(live) -> None:
    home = get(live, "/index.json").json()
    assert home["figures"]["projects"] == 1 and home["figures"]["hospitals"] == 2
    assert home["figures"]["runs_released"] == 1 and home["figures"]["kg_co2e_released_runs"] > 0
    page = get(live, f"/projets/{live.reference}")
    assert page.status_code == 200 and ("terminé" in page.text or "résultats publiés" in page.text)
    twin = get(live, f"/projets/{live.reference}.json").json()
    assert twin["reference"] == live.reference and twin["approvals"][0]["signature"] in page.text
    assert {a["hospital"] for a in twin["approvals"][0]["acceptances"]} == {"cleveland", "hungarian"}
    (run,) = twin["runs"]
    assert run["id"] == live.run_id and run["released_at"] and 0.99 <= run["epsilon"] <= 1.0 and run["kg_co2e"] > 0
    assert twin["charter"]["checks"] and all(check["ok"] for check in twin["charter"]["checks"])
    assert "Contrôles de la charte" in page.text and "✓" in page.text
    flags = [c for c in twin["charter"]["checks"] if c["outcome"] == "flag"]
    assert [c["id"] for c in flags] == ["sensitive_flagged"] and "⚑ signalé aux relecteurs" in page.text
    assert "variables marquées sensibles : sex" in page.text
    assert "dpo@chu-demo.example" in get(live, "/vos-droits").text
    hospital = get(live, "/hopitaux/cleveland.json").json()
    assert hospital["datasets"] == ["cleveland"] and hospital["accepts_objections"]  # published by the node
    assert [p["reference"] for p in hospital["projects"]] == [live.reference]
    report = get(live, f"/projets/{live.reference}/rapport/{live.run_id}")
    assert report.status_code == 200 and "Rapport de confiance" in report.text and "Équité" in report.text
    assert "Trust report" in get(live, f"/en/projects/{live.reference}/report/{live.run_id}").text


def test_filters_narrow_the_project_list(live) -> None:
    assert get(live, "/projets.json", params={"hospital": "cleveland"}).json()["count"] == 1
    assert get(live, "/projets.json", params={"hospital": "va"}).json()["count"] == 0
    assert get(live, "/projets.json", params={"q": live.reference.lower()}).json()["count"] == 1
    assert get(live, "/projets.json", params={"q": "no such words"}).json()["count"] == 0
    listing = get(live, "/projets", params={"status": "rejected"})
    assert "Aucun projet ne correspond." in listing.text


@pytest.mark.parametrize("path", ["/projets/RAIH-1999-0001", "/en/projects/nope", "/hopitaux/nowhere",
                                  "/projets/x/rapport/y", "/opposition/AAAA-BBBB-CCCC-DDDD"])
def test_unknown_pages_are_404_pages_in_their_language(live, path: str) -> None:
    response = get(live, path)
    assert response.status_code == 404 and ("Page introuvable" in response.text or "Page not found" in response.text)


def test_an_unreleased_run_has_no_public_report_and_json_twins_404(live) -> None:
    assert get(live, f"/projets/{live.reference}/rapport/not-a-run").status_code == 404
    assert get(live, "/projets/RAIH-1999-0001.json").status_code == 404


def test_the_objection_form_gives_a_receipt_and_refuses_bad_input_in_plain_words(live) -> None:
    bad = httpx.post(live.url + "/opposition", data={"hospital": "cleveland", "identifier": " "}, timeout=20)
    assert bad.status_code == 422 and "de 1 à 100 caractères imprimables" in bad.text
    missing = httpx.post(live.url + "/en/objection", data={"hospital": "nowhere", "identifier": "x"}, timeout=20)
    assert missing.status_code == 404 and "Choose a hospital from the list." in missing.text
    patient = str(load_hospital("hungarian").patient_id[6])
    sent = httpx.post(live.url + "/opposition", data={"hospital": "hungarian", "identifier": patient},
                      timeout=20, follow_redirects=False)
    assert sent.status_code == 303
    receipt = get(live, sent.headers["location"])
    code = re.search(r'class="receipt">([A-Z0-9-]+)<', receipt.text).group(1)
    assert "reçue" in receipt.text or "appliquée" in receipt.text
    withdrawn = httpx.post(f"{live.url}/opposition/{code}", timeout=20, follow_redirects=True)
    assert withdrawn.status_code == 200 and ("retirée" in withdrawn.text or "retrait demandé" in withdrawn.text)


def test_the_hospital_page_lists_the_columns_its_node_published(live) -> None:
    twin = get(live, "/hopitaux/cleveland.json").json()
    (dataset,) = twin["catalogue"]
    assert dataset["name"] == "cleveland" and dataset["format"] == "csv"
    assert {"name": "age", "type": "numeric", "distinct": "many"} in dataset["columns"]
    french, english = get(live, "/hopitaux/cleveland").text, get(live, "/en/hospitals/cleveland").text
    assert "Colonnes de cleveland" in french and "<code>age</code></th><td>nombre</td><td>nombreuses</td>" in french
    assert "Columns of cleveland" in english and "<code>age</code></th><td>number</td><td>many</td>" in english
