"""A project's registry record as labelled plain text, in French or English (pure)."""

from __future__ import annotations

FIELDS = {  # spec key -> (French label, English label), in display order; HDH répertoire names where they exist
    "purpose_category": ("Finalité de l'étude", "Purpose"),
    "objectives": ("Objectifs poursuivis", "Objectives"),
    "public_interest_justification": ("Intérêt public", "Public interest"),
    "medical_domains": ("Domaines médicaux investigués", "Medical domains"),
    "controllers": ("Responsables de traitement", "Data controllers"),
    "legal_basis": ("Base légale", "Legal basis"),
    "formality": ("Formalité", "Formality"),
    "authorisation_number": ("Numéro d'autorisation CNIL", "CNIL authorisation number"),
    "cesrees_opinion": ("Avis du CESREES", "CESREES opinion"),
    "dpia_reference": ("Analyse d'impact (AIPD)", "Impact assessment (DPIA)"),
    "datasets": ("Sources de données utilisées", "Data sources"),
    "data_categories": ("Catégories de données", "Data categories"),
    "population": ("Population", "Population"),
    "algorithm": ("Algorithme", "Algorithm"),
    "parameters": ("Paramètres", "Parameters"),
    "epsilon": ("Budget de confidentialité ε", "Privacy budget ε"),
    "delta": ("δ", "δ"),
    "k_min": ("Plus petit effectif publié (k_min)", "Smallest count released (k_min)"),
    "territories": ("Territoires", "Territories"),
    "patient_involvement": ("Implication des patients", "Patient involvement"),
    "equity_statement": ("Équité", "Equity"),
    "expected_carbon_kgco2e": ("Empreinte carbone prévue (kg CO2e)", "Expected carbon footprint (kg CO2e)"),
    "start_date": ("Date de début", "Start date"),
    "planned_end_date": ("Fin prévue", "Planned end"),
    "retention_end_date": ("Suppression des données et modèles", "Deletion of data and models"),
    "reports_requested": ("Rapports demandés", "Reports requested"),
    "funding": ("Financement", "Funding"),
    "conflicts_of_interest": ("Liens d'intérêts", "Conflicts of interest"),
}
ROLES = {"controller": ("responsable", "controller"), "joint_controller": ("responsable conjoint", "joint controller"),
         "processor": ("sous-traitant", "processor")}


def registry_rows(spec: dict, lang: str = "fr") -> list[tuple[str, str]]:
    """``(label, text)`` of each filled public field of ``spec``.

    >>> registry_rows({"medical_domains": ["cardiologie"], "epsilon": 1.0, "funding": ""}, "en")
    [('Medical domains', 'cardiologie'), ('Privacy budget ε', '1')]
    """
    index = 0 if lang == "fr" else 1
    rows = []
    for key, labels in FIELDS.items():
        value = spec.get(key)
        if value in (None, "", [], {}):
            continue
        rows.append((labels[index], _text(key, value, index)))
    return rows


def _text(key: str, value, index: int) -> str:
    if key == "controllers":
        return "; ".join(f"{c.get('name', '')} ({ROLES.get(c.get('role'), (c.get('role'),) * 2)[index]}"
                         f"{', ' + c['type'] if c.get('type') else ''})"
                         f"{' — DPO : ' + c['dpo_contact'] if c.get('dpo_contact') else ''}" for c in value)
    if key == "datasets":
        return "; ".join(f"{d.get('node_id')} : {d.get('dataset')}" for d in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} = {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return ("oui", "yes")[index] if value else ("non", "no")[index]
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
