"""Open data of the portal: JSON twins valid against the documented schema, CSV with HDH columns, DCAT, Atom,
and the verification page and command."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from live_desk import live  # noqa: F401  (fixture)

from fedsante.portal.opendata import HDH_COLUMNS
from fedsante.portal.schema import PAGES

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs" / "portal.md"


def get(live, path: str) -> httpx.Response:
    response = httpx.get(live.url + path, timeout=20)
    assert response.status_code == 200, (path, response.text[:300])
    return response


def test_every_json_twin_validates_against_the_published_schema(live) -> None:
    twins = {"home": "/index.json", "projects": "/en/projects.json", "project": f"/projets/{live.reference}.json",
             "hospital": "/hopitaux/cleveland.json", "verify": "/verifier.json"}
    for page, path in twins.items():
        PAGES[page].model_validate(get(live, path).json())  # extra fields are refused
    served = get(live, "/schemas/portal.json").json()
    assert set(served["pages"]) == set(PAGES)
    assert "reviewer_organisation" in str(served["pages"]["project"])


def test_the_schema_is_documented_field_by_field() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for model in PAGES.values():
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in text, (model.__name__, name)


def test_the_csv_opens_with_the_hdh_columns_then_ours(live) -> None:
    response = get(live, "/registre.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    header = response.text.splitlines()[0].split(",")
    assert tuple(header[:len(HDH_COLUMNS)]) == HDH_COLUMNS and "Etape  : Complétude" in header
    (row,) = rows
    assert row["Référence"] == live.reference and row["Finalité de l'étude"]
    assert "Cleveland Clinic Foundation" in row["Description Entité mettant à disposition"]
    assert row["runs_released"] == "1" and row["url"].endswith(f"/projets/{live.reference}")


def test_dcat_catalogue_and_atom_feed_list_the_project_and_its_released_results(live) -> None:
    catalogue = get(live, "/registre.dcat.json").json()
    assert catalogue["@type"] == "dcat:Catalog" and catalogue["dcat:dataset"][0]["dct:identifier"] == live.reference
    feed = ET.fromstring(get(live, "/flux.atom").content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in feed.findall("a:entry", ns)]
    assert any(t.startswith(f"Nouveau projet {live.reference}") for t in titles)
    assert any(t.startswith("Résultats publiés") for t in titles)
    assert all(e.findtext("a:updated", namespaces=ns).endswith("+00:00") for e in feed.findall("a:entry", ns))


def test_anyone_can_verify_an_approval_and_a_nodes_published_head(live) -> None:
    page = get(live, "/verifier.json").json()
    assert page["approvals"] and all(a["problems"] == [] for a in page["approvals"])
    assert "signature valide" in get(live, "/verifier").text
    ok = subprocess.run([sys.executable, "-m", "fedsante", "audit", "approval", live.reference, "--desk-url", live.url],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "signature valid" in ok.stdout, ok.stderr
    chain = live.deployment.out_dir / "nodes" / "cleveland" / "audit.jsonl"
    done = subprocess.run([sys.executable, "-m", "fedsante", "audit", "verify", str(chain), "--published", "cleveland",
                           "--config", str(live.deployment.out_dir / "nodes" / "cleveland.toml"),
                           "--desk-url", live.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "is an entry of this chain" in done.stdout, done.stderr
    missing = subprocess.run([sys.executable, "-m", "fedsante", "audit", "approval", "RAIH-1999-0001",
                              "--desk-url", live.url], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "No public project" in missing.stderr


def test_a_tampered_approval_fails_verification() -> None:
    from fedsante.federation.approval import verify_published

    assert verify_published({"document": {}, "signature": "x"}, [])[0].startswith("not a signed approval")
