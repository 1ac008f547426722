"""The portal's fixed texts, French first (the portal's default language) and English (under /en)."""

from __future__ import annotations

PATHS = {  # page -> language -> path (the JSON twin adds .json, the home page's is /index.json)
    "home": {"fr": "/", "en": "/en/"},
    "projects": {"fr": "/projets", "en": "/en/projects"},
    "project": {"fr": "/projets/{reference}", "en": "/en/projects/{reference}"},
    "report": {"fr": "/projets/{reference}/rapport/{run_id}", "en": "/en/projects/{reference}/report/{run_id}"},
    "hospital": {"fr": "/hopitaux/{node_id}", "en": "/en/hospitals/{node_id}"},
    "rights": {"fr": "/vos-droits", "en": "/en/your-rights"},
    "verify": {"fr": "/verifier", "en": "/en/verify"},
    "objection": {"fr": "/opposition", "en": "/en/objection"},
    "receipt": {"fr": "/opposition/{receipt}", "en": "/en/objection/{receipt}"},
}

STATUS = {
    "fr": {"submitted": "déposé", "in_review": "en cours d'examen", "changes_requested": "modifications demandées",
           "approved": "autorisé", "rejected": "refusé", "running": "en cours", "completed": "terminé",
           "results_released": "résultats publiés", "archived": "archivé", "failed": "échoué",
           "received": "reçue", "applied": "appliquée", "withdrawal_requested": "retrait demandé",
           "withdrawn": "retirée"},
    "en": {"submitted": "submitted", "in_review": "under review", "changes_requested": "changes requested",
           "approved": "approved", "rejected": "rejected", "running": "running", "completed": "completed",
           "results_released": "results published", "archived": "archived", "failed": "failed",
           "received": "received", "applied": "applied", "withdrawal_requested": "withdrawal requested",
           "withdrawn": "withdrawn"},
}

T = {
    "fr": {
        "site": "fedsante — espace de confiance pour l'IA en santé", "skip": "Aller au contenu",
        "nav_home": "Accueil", "nav_projects": "Projets", "nav_rights": "Vos droits", "nav_objection": "Vous opposer",
        "other_lang": "English", "json": "Ces données en JSON",
        "home_title": "L'IA sur les données de santé de la région, en toute transparence",
        "home_intro": "Les hôpitaux de la région entraînent des modèles d'intelligence artificielle sans que les "
                      "données de leurs patients ne sortent de chez eux. Le guichet IA examine chaque projet au regard "
                      "d'une charte éthique. Tout est publié ici : les projets, les décisions, les autorisations "
                      "signées, les exécutions et leurs résultats.",
        "fig_projects": "projets publiés", "fig_hospitals": "hôpitaux", "fig_runs": "exécutions",
        "fig_released": "résultats publiés", "fig_epsilon": "plus grand budget de confidentialité dépensé (ε)",
        "fig_carbon": "kg CO2e des exécutions publiées", "latest": "Derniers projets",
        "by_status": "Projets par état",
        "projects_title": "Projets", "search": "Rechercher", "filter": "Filtrer", "all": "tous",
        "status": "état", "purpose": "finalité", "hospital": "hôpital", "territory": "territoire",
        "results": "{} projet(s)", "none": "Aucun projet ne correspond.", "reference": "référence",
        "title": "titre", "organisation": "porteur",
        "summary": "Résumé", "registry": "Fiche du registre", "reviews": "Examen par le guichet",
        "events": "Historique", "approval": "Autorisation signée", "runs": "Exécutions",
        "verify": "Vérifier la signature : récupérez les clés publiques du guichet (GET /api/v1/keys), puis "
                  "vérifiez la signature Ed25519 du document canonique avec la clé indiquée, par exemple avec "
                  "« fedsante audit approval {} ».",
        "expires": "valable jusqu'au", "acceptances": "Décisions des hôpitaux", "decision": "décision",
        "report": "rapport de confiance", "held": "résultats en attente de publication", "epsilon": "ε dépensé",
        "hospitals_title": "Hôpital", "datasets": "Jeux de données proposés", "using": "Projets qui les utilisent",
        "objections_in_force": "Oppositions appliquées", "small": "moins de 11 (non publié)",
        "accepts": "reçoit les oppositions", "not_yet": "ne reçoit pas encore d'oppositions",
        "catalogue": "Colonnes des jeux de données",
        "catalogue_intro": "Ce que l'hôpital publie de ses données pour que l'on puisse écrire une étude : le nom "
                           "et le type de chaque colonne, jamais une valeur ni un effectif.",
        "catalogue_none": "Le nœud de l'hôpital n'a pas encore publié ses colonnes.",
        "columns_of": "Colonnes de {}", "column": "colonne", "type": "type", "distinct": "valeurs distinctes",
        "format": "Format : {}",
        "types": {"numeric": "nombre", "text": "texte"},
        "levels": {"<= 20 levels": "≤ 20 valeurs distinctes", "many": "nombreuses"},
        "rights_title": "Vos droits",
        "rights_body": [
            "Les données de santé restent dans chaque hôpital : seuls des paramètres de modèle et des statistiques "
            "agrégées, bruitées et contrôlées en sortent.",
            "Base légale : mission d'intérêt public (RGPD art. 6(1)(e)) et recherche ou évaluation dans le domaine "
            "de la santé (art. 9(2)(j)), selon les formalités déclarées dans la fiche de chaque projet (méthodologie "
            "de référence MR-004 ou autorisation de la CNIL).",
            "Vous pouvez vous opposer à l'utilisation de vos données par un hôpital, à tout moment et sans "
            "justification (RGPD art. 21, Code de la santé publique L.1461-1) : l'hôpital vous exclut de toute "
            "analyse à venir.",
            "Pour toute question, écrivez au délégué à la protection des données (DPO) de l'hôpital ; chaque fiche "
            "de projet indique le contact du DPO de chaque responsable de traitement.",
        ],
        "objection_title": "Vous opposer à l'utilisation de vos données",
        "objection_intro": "Indiquez l'hôpital et l'identifiant sous lequel il vous connaît (par exemple le numéro "
                           "de patient d'un courrier de l'hôpital). L'identifiant est chiffré pour cet hôpital dès "
                           "réception : le guichet ne le voit jamais en clair. Gardez le code de reçu qui s'affiche "
                           "ensuite : il permet de suivre votre opposition et de la retirer.",
        "birth_date": "Votre date de naissance (si l'hôpital la demande)",
        "identifier": "Votre identifiant à l'hôpital", "choose": "Choisissez un hôpital", "send": "Envoyer",
        "receipt_title": "Votre opposition", "receipt_code": "Code de reçu", "keep": "Notez ce code : il ne sera "
        "plus affiché et personne ne peut le retrouver pour vous.",
        "received_at": "reçue le", "applied_at": "appliquée à {} le {}", "withdrawn_at": "retirée le",
        "withdraw": "Retirer mon opposition", "error_title": "Erreur", "back": "Retour",
        "not_found": "Page introuvable", "nav_verify": "Vérifier",
        "charter_checks": "Contrôles de la charte", "dpo": "Délégués à la protection des données",
        "charter_intro": "Contrôles automatiques de la charte {} (version {}) sur la version actuelle du projet :",
        "charter_flag": "signalé aux relecteurs :",
        "download": "Télécharger le registre", "csv": "CSV (colonnes du répertoire du Health Data Hub)",
        "dcat": "catalogue DCAT (JSON-LD)", "atom": "flux Atom des nouveaux projets et résultats",
        "verify_title": "Vérifier le travail du guichet",
        "verify_intro": "Chaque autorisation est signée par une clé du guichet, et le guichet comme chaque hôpital "
                        "tiennent un journal d'audit chaîné et signé dont l'empreinte de tête est publiée ici. Vous "
                        "pouvez tout vérifier vous-même, sans compte :",
        "keys_caption": "Clés de signature du guichet", "heads_caption": "Têtes publiées des journaux d'audit",
        "approvals_caption": "Autorisations et vérification de leur signature", "valid": "signature valide",
        "who": "journal", "seq": "entrées", "head": "empreinte de tête", "reported": "publiée le",
        "project": "projet", "created": "créée le", "retired": "retirée le", "check": "vérification",
        "err_identifier": "Indiquez votre identifiant : de 1 à 100 caractères imprimables.",
        "err_birth_date": "Indiquez votre date de naissance sous la forme AAAA-MM-JJ (ou JJ/MM/AAAA), "
                          "ou laissez-la vide.",
        "err_hospital": "Choisissez un hôpital de la liste.",
        "err_too_many": "Trop d'oppositions envoyées depuis cette adresse : attendez une minute puis réessayez.",
        "err_unavailable": "Cet hôpital ne peut pas encore recevoir d'oppositions ; réessayez plus tard ou écrivez à "
                           "son délégué à la protection des données.",
    },
    "en": {
        "site": "fedsante — a trusted space for AI on health data", "skip": "Skip to content",
        "nav_home": "Home", "nav_projects": "Projects", "nav_rights": "Your rights", "nav_objection": "Object",
        "other_lang": "Français", "json": "This data as JSON",
        "home_title": "AI on the region's health data, in full view",
        "home_intro": "The region's hospitals train artificial-intelligence models without their patients' data "
                      "leaving them. The AI desk reviews each project against an ethics charter. Everything is "
                      "published here: projects, decisions, signed approvals, runs and their results.",
        "fig_projects": "published projects", "fig_hospitals": "hospitals", "fig_runs": "runs",
        "fig_released": "released results", "fig_epsilon": "largest privacy budget spent (ε)",
        "fig_carbon": "kg CO2e of released runs", "latest": "Latest projects", "by_status": "Projects by status",
        "projects_title": "Projects", "search": "Search", "filter": "Filter", "all": "all",
        "status": "status", "purpose": "purpose", "hospital": "hospital", "territory": "territory",
        "results": "{} project(s)", "none": "No project matches.", "reference": "reference",
        "title": "title", "organisation": "holder",
        "summary": "Summary", "registry": "Registry record", "reviews": "Review by the desk", "events": "History",
        "approval": "Signed approval", "runs": "Runs",
        "verify": "Verify the signature: fetch the desk's public keys (GET /api/v1/keys), then check the Ed25519 "
                  "signature of the canonical document with the key named, for example with "
                  "'fedsante audit approval {}'.",
        "expires": "valid until", "acceptances": "Hospitals' decisions", "decision": "decision",
        "report": "trust report", "held": "results awaiting release", "epsilon": "ε spent",
        "hospitals_title": "Hospital", "datasets": "Datasets offered", "using": "Projects using them",
        "objections_in_force": "Objections applied", "small": "fewer than 11 (not published)",
        "accepts": "receives objections", "not_yet": "does not receive objections yet",
        "catalogue": "Columns of the datasets",
        "catalogue_intro": "What the hospital publishes of its data so that a study can be written: each column's "
                           "name and type, never a value or a count.",
        "catalogue_none": "The hospital's node has not published its columns yet.",
        "columns_of": "Columns of {}", "column": "column", "type": "type", "distinct": "distinct values",
        "format": "Format: {}",
        "types": {"numeric": "number", "text": "text"},
        "levels": {"<= 20 levels": "≤ 20 distinct values", "many": "many"},
        "rights_title": "Your rights",
        "rights_body": [
            "Health data stay in each hospital: only model parameters and aggregated, noised and checked statistics "
            "leave it.",
            "Legal basis: a task in the public interest (GDPR Art. 6(1)(e)) and research or evaluation in health "
            "(Art. 9(2)(j)), under the formality each project's record declares (reference methodology MR-004 or a "
            "CNIL authorisation).",
            "You may object to a hospital's use of your data at any time, without giving a reason (GDPR Art. 21, "
            "French Public Health Code L.1461-1): the hospital then leaves you out of every future analysis.",
            "For any question, write to the hospital's data protection officer (DPO); each project's record gives "
            "the DPO contact of each controller.",
        ],
        "objection_title": "Object to the use of your data",
        "objection_intro": "Name the hospital and the identifier it knows you by (for example the patient number on "
                           "a letter from the hospital). The identifier is encrypted for that hospital as soon as it "
                           "arrives: the desk never sees it in clear. Keep the receipt code shown next: it lets you "
                           "follow your objection and withdraw it.",
        "birth_date": "Your date of birth (if the hospital asks for it)",
        "identifier": "Your identifier at the hospital", "choose": "Choose a hospital", "send": "Send",
        "receipt_title": "Your objection", "receipt_code": "Receipt code", "keep": "Write this code down: it will "
        "not be shown again and nobody can find it for you.",
        "received_at": "received on", "applied_at": "applied at {} on {}", "withdrawn_at": "withdrawn on",
        "withdraw": "Withdraw my objection", "error_title": "Error", "back": "Back", "not_found": "Page not found",
        "nav_verify": "Verify", "verify_title": "Verify the desk's work",
        "charter_checks": "Charter checks", "dpo": "Data protection officers",
        "charter_intro": "Automatic checks of charter {} (version {}) on the project's current version:",
        "charter_flag": "flagged to reviewers:",
        "download": "Download the registry", "csv": "CSV (Health Data Hub répertoire columns)",
        "dcat": "DCAT catalogue (JSON-LD)", "atom": "Atom feed of new projects and results",
        "verify_intro": "Every approval is signed with one of the desk's keys, and the desk and each hospital keep a "
                        "hash-chained, signed audit log whose head is published here. You can check everything "
                        "yourself, without an account:",
        "keys_caption": "The desk's signing keys", "heads_caption": "Published heads of the audit logs",
        "approvals_caption": "Approvals and the check of their signatures", "valid": "valid signature",
        "who": "log", "seq": "entries", "head": "head hash", "reported": "published on",
        "project": "project", "created": "created on", "retired": "retired on", "check": "check",
        "err_identifier": "Give your identifier: 1 to 100 printable characters.",
        "err_birth_date": "Give your date of birth as YYYY-MM-DD (or DD/MM/YYYY), or leave it empty.",
        "err_hospital": "Choose a hospital from the list.",
        "err_too_many": "Too many objections sent from this address: wait a minute and try again.",
        "err_unavailable": "This hospital cannot receive objections yet; try again later or write to its data "
                           "protection officer.",
    },
}
