"""The registry as open data: CSV with the HDH répertoire's columns, DCAT-style JSON-LD, and an Atom feed.

The CSV opens with the column names of the Health Data Hub's public "répertoire des projets" export,
verbatim where a fedsante field corresponds (docs/portal.md lists the mapping), then fedsante's own
columns. Columns with no counterpart here (SNDS components, HDH catalogue bases) are present and
empty, so that a tool reading HDH exports reads this one too.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from fedsante.portal import data

HDH_COLUMNS = (
    "Référence", "title", "Responsable de traitement 1", "Type responsable treatment 1",
    "Responsable de traitement 2", "Type responsable treatment 2", "Responsable de traitement 3",
    "Type responsable treatment 3", "Description Entité mettant à disposition", "Source de données utilisées",
    "Composante(s) de la base principale du SNDS mobilisée(s)", "Base(s) du catalogue du HDH mobilisée(s)",
    "Autre(s) source(s) de donnée(s) mobilisée(s)", "Domaines médicaux investigués", "Finalité de l'étude",
    "Objectifs poursuivis", "Date de début", "statut calendrier", "Etape  : Complétude",
)
OWN_COLUMNS = ("status", "lay_summary_fr", "lay_summary_en", "legal_basis", "formality", "epsilon", "delta", "k_min",
               "territories", "approval_id", "approval_sha256", "runs_released", "url")


def _rows(desk, base_url: str) -> list[dict]:
    listing = data.projects(desk, {})["projects"]
    return [data.project(desk, p["reference"]) for p in listing]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def registry_csv(desk, base_url: str) -> str:
    """Every public project, one line each (UTF-8, comma-separated, header first)."""
    hospitals = {h["id"]: h["name"] for h in data.hospital_list(desk)}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HDH_COLUMNS + OWN_COLUMNS)
    for p in _rows(desk, base_url):
        spec = p["spec"]
        controllers = (spec.get("controllers") or [])[:3]
        pairs = [(c.get("name", ""), c.get("type", "")) for c in controllers] + [("", "")] * (3 - len(controllers))
        datasets = spec.get("datasets") or []
        completed = p["status"] in ("completed", "results_released", "archived")
        approval = p["approvals"][-1] if p["approvals"] else {}
        writer.writerow(csv_cell(v) for v in [
            p["reference"], p["title"], *[v for pair in pairs for v in pair],
            "; ".join(sorted({hospitals.get(d["node_id"], d["node_id"]) for d in datasets})),
            "Autre(s)" if datasets else "", "", "",
            "; ".join(f"{d['node_id']}: {d['dataset']}" for d in datasets),
            ", ".join(spec.get("medical_domains") or []), spec.get("purpose_category", ""), spec.get("objectives", ""),
            spec.get("start_date") or "", "terminé" if completed else "en cours",
            (p["updated_at"] or "")[:10] if completed else "",
            p["status"], spec.get("lay_summary_fr", ""), spec.get("lay_summary_en", ""), spec.get("legal_basis", ""),
            spec.get("formality", ""), spec.get("epsilon") or "", spec.get("delta") or "", spec.get("k_min", ""),
            ", ".join(spec.get("territories") or []), approval.get("id", ""), approval.get("sha256", ""),
            sum(1 for r in p["runs"] if r["released_at"]), f"{base_url}/projets/{p['reference']}",
        ])
    return out.getvalue()


def registry_dcat(desk, base_url: str) -> dict:
    """The registry as a DCAT catalogue (JSON-LD): one dcat:Dataset per project, its pages as distributions."""
    datasets = []
    for p in _rows(desk, base_url):
        spec, page = p["spec"], f"{base_url}/projets/{p['reference']}"
        datasets.append({
            "@id": page, "@type": "dcat:Dataset", "dct:identifier": p["reference"], "dct:title": p["title"],
            "dct:description": [{"@language": "fr", "@value": spec.get("lay_summary_fr", "")},
                                {"@language": "en", "@value": spec.get("lay_summary_en", "")}],
            "dct:publisher": p["organisation"], "dct:issued": p["submitted_at"], "dct:modified": p["updated_at"],
            "dcat:keyword": spec.get("medical_domains") or [], "dct:spatial": spec.get("territories") or [],
            "dct:accessRights": "public", "fedsante:status": p["status"],
            "dcat:distribution": [
                {"@type": "dcat:Distribution", "dcat:accessURL": page, "dcat:mediaType": "text/html"},
                {"@type": "dcat:Distribution", "dcat:accessURL": page + ".json", "dcat:mediaType": "application/json"},
            ],
        })
    return {"@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                         "fedsante": f"{base_url}/ns#"},
            "@id": f"{base_url}/registre.dcat.json", "@type": "dcat:Catalog",
            "dct:title": "Registre des projets d'IA fédérée / Registry of federated AI projects",
            "dct:modified": datetime.now(UTC).isoformat(), "dcat:dataset": datasets}


ATOM = "http://www.w3.org/2005/Atom"


def atom_feed(desk, base_url: str) -> str:
    """New projects and released results, newest first (Atom 1.0)."""
    entries = []
    for p in _rows(desk, base_url):
        page = f"{base_url}/projets/{p['reference']}"
        entries.append((p["submitted_at"], f"{page}#projet", f"Nouveau projet {p['reference']} : {p['title']}",
                        page, p["spec"].get("lay_summary_fr", "")))
        for run in p["runs"]:
            if run["released_at"]:
                report = f"{page}/rapport/{run['id']}"
                entries.append((run["released_at"], report, f"Résultats publiés : {p['title']} (exécution {run['id']})",
                                report, f"ε dépensé : {run['epsilon']}; hôpitaux : {', '.join(run['hospitals'])}"))
    entries.sort(key=lambda e: e[0] or "", reverse=True)
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}title").text = "fedsante : projets et résultats"
    ET.SubElement(feed, f"{{{ATOM}}}id").text = f"{base_url}/flux.atom"
    ET.SubElement(feed, f"{{{ATOM}}}link", href=f"{base_url}/flux.atom", rel="self")
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = entries[0][0] if entries else datetime.now(UTC).isoformat()
    for updated, entry_id, title, link, summary in entries:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = entry_id
        ET.SubElement(entry, f"{{{ATOM}}}title").text = title
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = updated
        ET.SubElement(entry, f"{{{ATOM}}}link", href=link)
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = summary
        author = ET.SubElement(entry, f"{{{ATOM}}}author")
        ET.SubElement(author, f"{{{ATOM}}}name").text = "Guichet IA"
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="unicode")
