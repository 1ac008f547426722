"""The feasibility stage shared by every run: does a node meet k_min, said without a count.

Before anything is computed or spent, each node checks its cohort for the run against the approval's
k_min (or its own floor, whichever is larger), on its true counts:

* its training rows and its test rows: below k_min in either, the node is **left out** of the run
  (nothing it could release would pass disclosure control);
* for a binary outcome, each outcome class among its training rows and among its test rows: below
  k_min, the node **takes part** (its rows still train the model and count in the sums over hospitals,
  where k_min applies to the sums) but its own per-class figures will be withheld; the holder is told.

A node answers ``{"meets": bool, "reason": CODE, "notes": [CODE...]}`` with codes of :data:`REASONS`
only: no free text leaves the node, so no count can.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedsante.federation.approval import SignedApproval

FEASIBILITY = "feasibility"
REASONS = {
    "train_rows": "patients among its training rows",
    "test_rows": "patients among its test rows",
    "no_data": "patients in its data for this study",
}
"""Shortfalls that leave a node out of the run."""
NOTES = {
    "train_positive": "patients with the outcome among its training rows",
    "train_negative": "patients without the outcome among its training rows",
    "test_positive": "patients with the outcome among its test rows",
    "test_negative": "patients without the outcome among its test rows",
}
"""Shortfalls of one outcome class: the node takes part, its own per-class figures are withheld."""


def assess(counts: Mapping[str, int], k_min: int) -> tuple[bool, str | None, list[str]]:
    """Decide on the true counts (``train_rows``, ``test_rows`` and, for a binary outcome, the classes).

    A count of 0 is a shortfall too.

    >>> assess({"train_rows": 30, "test_rows": 16, "test_positive": 15, "test_negative": 1}, 11)
    (True, None, ['test_negative'])
    >>> assess({"train_rows": 16, "test_rows": 6}, 11)
    (False, 'test_rows', [])
    """
    reason = next((code for code in REASONS if code in counts and counts[code] < k_min), None)
    notes = [code for code in NOTES if code in counts and counts[code] < k_min]
    return reason is None, reason, notes


def read_reply(payload: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    """A node's answer, validated: anything malformed counts as 'does not meet' (reason unknown)."""
    notes = payload.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) and n in NOTES for n in notes) or len(notes) > 4:
        return False, "no_data", []
    if payload.get("meets") is True and payload.get("reason") is None and set(payload) <= {"meets", "reason", "notes"}:
        return True, "", sorted(set(notes))
    code = payload.get("reason")
    return False, code if isinstance(code, str) and code in REASONS else "no_data", []


REASONS_FR = {
    "train_rows": "parmi ses lignes d'entraînement",
    "test_rows": "parmi ses lignes de test",
    "no_data": "dans ses données pour cette étude",
}
NOTES_FR = {
    "train_positive": "présentant l'événement parmi ses lignes d'entraînement",
    "train_negative": "sans l'événement parmi ses lignes d'entraînement",
    "test_positive": "présentant l'événement parmi ses lignes de test",
    "test_negative": "sans l'événement parmi ses lignes de test",
}
"""The same shortfalls, in French (the trust report's French page)."""


def describe(hospital: str, code: str, approval: SignedApproval | None) -> str:
    """The plain sentence shown to the project holder, with k_min and no count.

    >>> describe("Hôpital Nord", "test_rows", None)
    'Hôpital Nord has fewer than k_min = 11 patients among its test rows: left out.'
    >>> describe("Hôpital Nord", "test_positive", None)  # doctest: +ELLIPSIS
    'Hôpital Nord has fewer than k_min = 11 patients with the outcome among its test rows: it takes part, ...'
    """
    return sentence(hospital, code, approval.document.k_min if approval is not None else 11)


def sentence(hospital: str, code: str, k_min: int, lang: str = "en") -> str:
    """:func:`describe` from the reason or note code and k_min, in English (``"en"``) or French (``"fr"``).

    >>> sentence("Hôpital Nord", "test_rows", 11, "fr")
    "Hôpital Nord compte moins de k_min = 11 patients parmi ses lignes de test : il est écarté de l'analyse."
    """
    if lang == "fr":
        if code in NOTES_FR:
            return (f"{hospital} compte moins de k_min = {k_min} patients {NOTES_FR[code]} : il participe, mais ses "
                    "propres résultats pour cette classe ne sont pas publiés.")
        return (f"{hospital} compte moins de k_min = {k_min} patients "
                f"{REASONS_FR.get(code, REASONS_FR['no_data'])} : il est écarté de l'analyse.")
    if code in NOTES:
        return (f"{hospital} has fewer than k_min = {k_min} {NOTES[code]}: it takes part, but its own figures for "
                "that class are withheld.")
    return f"{hospital} has fewer than k_min = {k_min} {REASONS.get(code, REASONS['no_data'])}: left out."
