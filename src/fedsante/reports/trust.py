"""The trust report of a run: performance, calibration, explanation, privacy and a model card.

Built at the desk from what the run released (pure: takes the run, the registry record of its
project and the nodes' metadata, returns a JSON-serialisable dict; :mod:`fedsante.reports.render`
turns it into HTML and plain-language summaries). Nothing here sees a patient: performance and
calibration come from each hospital's evaluation statistics (:class:`~fedsante.reports.performance.GroupStats`,
noised under differential privacy), summed per territory and over the federation; the explanation
comes from the released model's coefficients. A group under k_min patients, or with an outcome class
under k_min, is suppressed, not shown.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from fedsante.privacy.disclosure import DisclosurePolicy, protect_subgroups
from fedsante.privacy.membership import dp_auc_ceiling
from fedsante.federation.feasibility import sentence
from fedsante.federation.result import IMPORTANCE, RunResult
from fedsante.reports._format import lower_first
from fedsante.reports.carbon import carbon_report
from fedsante.reports.explain import aggregate_importance, odds_ratios
from fedsante.reports.fairness import METRICS, flags, gaps
from fedsante.reports.noise import beyond_noise, from_counts, metric_noise_sd, project_counts
from fedsante.reports.performance import GroupStats, reliability_curve, summary

SCHEMA = "fedsante-trust-report/1"
LANGS = ("en", "fr")
WITHHELD = "withheld at the hospital: an outcome class has fewer than k_min patients in its test set"


def project_reference(run: dict) -> str:
    """The project reference of a run, from its approval id ``<reference>-v<version>``."""
    approval = run.get("approval_id") or ""
    return approval.rsplit("-v", 1)[0] if "-v" in approval else ""


def group_entry(stats: GroupStats | None, k_min: int, *, reason: str | None = None) -> dict:
    """Metrics and reliability curve of one group, or ``metrics: None`` with the reason it is suppressed."""
    if stats is None:
        return {"metrics": None, "reason": reason or WITHHELD}
    policy = DisclosurePolicy(k_min=k_min)
    counts = (stats.n, stats.n_positive, stats.n - stats.n_positive)
    if any(0 < round(c) and policy.is_small(int(round(c))) for c in counts) or round(stats.n) <= 0:
        return {"metrics": None, "reason": f"suppressed: fewer than k_min = {k_min} patients in the group or one of its "
                                           "outcome classes"}
    metrics = {k: _clean(v) for k, v in summary(stats).items()}
    metrics["reliability"] = [{k: _clean(v) for k, v in row.items()} for row in reliability_curve(stats)]
    return {"metrics": metrics, "reason": None}


def performance(run: dict, result: RunResult, nodes: dict[str, dict], k_min: int) -> dict:
    """Per hospital (its own statistics), per territory and pooled (sums of the hospitals' statistics).

    Under differential privacy each shown group also gets the noise standard deviation of its metrics.
    """
    shared = {node: GroupStats.from_vector(np.asarray(v)) for node, v in result.node_stats.items()}
    public_n = {node: m.get("n") for node, m in result.node_metrics.items()}  # row counts are public
    noise = result.noise_sd()

    def entry(sites: list[str]) -> dict:
        released = [site for site in sites if site in shared]
        stats = sum(shared[site] for site in released) if released else None
        out = _with_n(group_entry(stats, k_min), released, public_n)
        if noise is not None and out["metrics"] is not None:
            spread = metric_noise_sd([shared[site] for site in released], noise, [public_n.get(s) for s in released])
            out["noise_sd"] = {k: _clean(v) for k, v in spread.items()}
        return out

    hospitals = {}
    for node in run["nodes"]:
        info = nodes.get(node, {})
        hospitals[node] = {"label": info.get("hospital_name") or node, "territory": info.get("territory") or "",
                           **entry([node])}
    by_territory: dict[str, list[str]] = defaultdict(list)
    for node in run["nodes"]:
        if hospitals[node]["territory"]:
            by_territory[hospitals[node]["territory"]].append(node)
    territories = {territory: {"sites": sites, **entry(sites)} for territory, sites in by_territory.items()}
    pooled_sites = [n for n in run["nodes"] if n in shared]
    return {"pooled": {"label": "all hospitals", "sites": pooled_sites, **entry(pooled_sites)},
            "hospitals": hospitals, "territories": territories}


def _with_n(entry: dict, sites: list[str], public_n: dict[str, float | None]) -> dict:
    """Show the exact (public) number of test patients rather than the sum of noisy counts."""
    counts = [public_n.get(site) for site in sites]
    if entry["metrics"] is not None and counts and None not in counts:
        entry["metrics"]["n"] = float(sum(counts))
    return entry


def fairness(result: RunResult, k_min: int) -> dict | None:
    """Each subgroup (sex, age band...) summed over the hospitals, gaps between groups and the charter's flags.

    The hospitals' statistics per subgroup are summed by secure aggregation: the desk sees only the sums,
    and suppresses a sum with fewer than k_min patients or an outcome class that small. Under differential
    privacy each metric comes with the standard deviation the noise gives it, and a gap is flagged only
    when it exceeds the threshold by more than the noise can explain.
    """
    layout, rows = result.fairness, result.subgroup_stats
    if layout is None or not layout.attributes or not rows:
        return None
    threshold, noise = layout.threshold, layout.noise_sd
    out, row = [], 0
    for attribute in layout.attributes:
        groups = {}
        for index, name in enumerate(attribute.groups):
            groups[name] = _subgroup(np.asarray(rows[row], dtype=float), k_min, noise)
            groups[name]["labels"] = {lang: attribute.group_label(index, lang) for lang in LANGS}
            row += 1
        _secondary_suppression(groups, k_min)
        metric_gaps = gaps({label: g["metrics"] for label, g in groups.items()}, METRICS)
        flagged, within = metric_gaps, []
        if noise is not None:
            flagged, within = beyond_noise(metric_gaps, {k: g.get("noise_sd") or {} for k, g in groups.items()},
                                           threshold, METRICS)
        out.append({"name": attribute.name, "labels": {lang: attribute.label(lang) for lang in LANGS}, "groups": groups,
                    "gaps": {m: {**g, "groups": list(g["groups"])} for m, g in metric_gaps.items()},
                    "flags": flags(_named(flagged, attribute, "en"), threshold), "within_noise": within})
    return {"threshold": threshold, "metrics": list(METRICS), "sites": list(result.subgroup_sites),
            "attributes": out, "noise_sd": noise}


def _named(metric_gaps: dict, attribute, lang: str) -> dict:
    """The gaps with each group's label in ``lang`` instead of its name (for the flags' sentences)."""
    labels = {name: lower_first(attribute.group_label(i, lang)) for i, name in enumerate(attribute.groups)}
    return {m: {**g, "groups": tuple(labels.get(x, x) for x in g["groups"])} for m, g in metric_gaps.items()}


def _secondary_suppression(groups: dict[str, dict], k_min: int) -> None:
    """Hide a shown group too when the total minus the shown groups would give a suppressed one's counts."""
    counts = {label: {"n": int(round(g["counts"][0])), "n_positive": int(round(g["counts"][1]))}
              for label, g in groups.items()}
    protected = protect_subgroups(counts, DisclosurePolicy(k_min=k_min))
    for label, group in groups.items():
        hidden = protected[label].values["n"] is None or protected[label].values["n_positive"] is None
        if hidden and group["metrics"] is not None:
            group.update(metrics=None, reason="suppressed: with the total known, this group would reveal a "
                                              "suppressed group's counts by subtraction (secondary suppression)")
            group.pop("noise_sd", None)
    for group in groups.values():
        group.pop("counts")


def _subgroup(vector: np.ndarray, k_min: int, noise: float | None) -> dict:
    """One subgroup's sum over the hospitals; under DP read from its noisy counts, with each metric's noise sd."""
    stats = GroupStats.from_vector(vector)
    if noise is not None:  # noisy counts only: non-negative with the noisy total, sums from the middle of each tenth
        stats = from_counts(project_counts(stats.counts, max(float(stats.counts.sum()), 0.0)).reshape(2, -1))
    else:  # whole numbers of patients, summed in fixed point by secure aggregation
        stats = GroupStats(stats.counts.round(), stats.sum_p, stats.sum_p2, stats.sum_py, stats.sum_logit)
    entry = group_entry(stats, k_min, reason=f"suppressed: fewer than k_min = {k_min} patients in the group or one "
                                             "of its outcome classes, over all hospitals")
    entry["counts"] = (stats.n, stats.n_positive)  # for secondary suppression, dropped before publication
    if entry["metrics"] is None:
        return entry
    entry["metrics"].pop("reliability")
    if noise is not None:
        entry["noise_sd"] = {k: _clean(v) for k, v in metric_noise_sd([stats], noise).items()}
    return entry


def _feature(result: RunResult, index: int) -> dict:
    """An encoded column: its raw name and the study's labels of it in each language."""
    return {"feature": result.features[index], "labels": {lang: result.label(index, lang) for lang in LANGS}}


def importance(run: dict, result: RunResult) -> dict | None:
    """Permutation importance aggregated over the hospitals (exact runs; weighted by test patients)."""
    evaluation = result.node_evaluation
    nodes = [node for node in run["nodes"] if IMPORTANCE in evaluation.get(node, {}) and result.metric(node, "n")]
    if not nodes:
        return None
    values = aggregate_importance([np.asarray(evaluation[node][IMPORTANCE]) for node in nodes],
                                  [int(result.metric(node, "n") or 0) for node in nodes])
    rows = sorted(({**_feature(result, i), "importance": float(v)} for i, v in enumerate(values)),
                  key=lambda row: -row["importance"])
    return {"sites": nodes, "features": rows}


def explanation(run: dict, result: RunResult) -> dict:
    """Coefficients and odds ratios of the released logistic regression, by decreasing weight."""
    model = {k: np.asarray(v, dtype=float) for k, v in result.model.items()}
    scale = np.asarray(result.scaler.scale, dtype=float) if result.scaler else np.ones(model["coef"].size)
    ratios = odds_ratios(model, scale)
    rows = [{**_feature(result, i), "coef": float(c), "odds_ratio_per_unit": float(u),
             "odds_ratio_per_scale_unit": float(s),
             "direction": "raises risk" if c > 0 else "lowers risk" if c < 0 else "no effect"}
            for i, (c, u, s) in enumerate(zip(model["coef"], ratios["per_unit"], ratios["per_sd"]))]
    rows.sort(key=lambda row: -abs(row["coef"]))
    return {"method": "Exact coefficients of the released model (log-odds per scale unit of each feature); per-patient "
                      "explanations are computed only inside each hospital.", "features": rows,
            "permutation_importance": importance(run, result)}


def privacy(run: dict, result: RunResult) -> dict | None:
    """What each hospital spent, release by release, and the membership-inference check."""
    spent = run.get("privacy") or {}
    if spent.get("epsilon") is None:
        return None
    metrics = result.node_metrics
    return {**spent, "noise_sd": result.noise_sd(), "membership": {
        "ceiling": dp_auc_ceiling(spent["epsilon"], spent["delta"]),
        "hospitals": {node: {"auc": _clean(m.get("membership_auc")), "noise_sd": _clean(m.get("membership_noise_sd"))}
                      for node, m in metrics.items()}}}


def carbon(result: RunResult, finished_at: object = None) -> dict | None:
    """Energy and kgCO2e per hospital, per round and in total (CodeCarbon at each node, plus communication)."""
    energy = {node: [r.model_dump() for r in records] for node, records in result.energy.items() if records}
    if not energy:
        return None
    first = next(r for records in result.energy.values() for r in records)
    traffic = {node: b for node, b in result.communication_bytes.items() if node in energy}
    year = int(str(finished_at or "2026")[:4])
    n_patients = int(sum(m.get("n") or 0 for m in result.node_metrics.values()) + sum(result.train_n.values()))
    return carbon_report(energy, traffic, intensity_g_per_kwh=first.intensity_g_per_kwh,
                         intensity_source=first.intensity_source, year=year, n_patients=max(n_patients, 1))


def participation(result: RunResult, nodes: dict[str, dict], k_min: int) -> dict:
    """Hospitals left out by the feasibility stage, and those whose figures for a class are withheld, in plain words.

    Each sentence is given in English and French, rebuilt from the stored codes (the stored English sentence
    when an older result has no code).
    """
    def name(node: str) -> str:
        return nodes.get(node, {}).get("hospital_name") or node

    def text(node: str, code: str | None, stored: str) -> dict:
        if code is None:
            return {"en": stored, "fr": stored}
        return {lang: sentence(name(node), code, k_min, lang) for lang in LANGS}

    left_out = [{"node": node, "hospital": name(node), "code": result.left_out_codes.get(node),
                 "text": text(node, result.left_out_codes.get(node), reason)} for node, reason in result.left_out.items()]
    notes = []
    for node, lines in result.notes.items():
        codes = result.note_codes.get(node) or []
        for i, line in enumerate(lines):
            code = codes[i] if i < len(codes) else None
            notes.append({"node": node, "hospital": name(node), "code": code, "text": text(node, code, line)})
    return {"left_out": left_out, "notes": notes}


def model_card(spec: dict, run: dict, result: RunResult, nodes: dict[str, dict]) -> dict:
    """The registry record and the run, under TRIPOD+AI item names."""
    def text(key: str) -> str:
        return str(spec.get(key) or "").strip()

    sites = ", ".join(f"{nodes.get(n, {}).get('hospital_name') or n} ({nodes.get(n, {}).get('territory') or '?'})"
                      for n in run["nodes"])
    spent = run.get("privacy") or {}
    items = [
        ("1 Title", text("title")),
        ("3a Healthcare context", text("public_interest_justification")),
        ("3b Target population and intended users", text("population")),
        ("4 Objectives", text("objectives")),
        ("5a Data sources", sites),
        ("9 Predictors", ", ".join(result.label(i, "en") for i in range(len(result.features)))),
        ("12 Analytical methods", f"{run['algorithm_id']} {run['algorithm_version']}, {run['rounds']} federated rounds "
                                  f"(FedAvg under secure aggregation), code hash {run['code_hash'][:16]}..."),
        ("14 Fairness", text("equity_statement")),
        ("17 Ethical approval", f"approval {run.get('approval_id')}; legal basis: {text('legal_basis')}; "
                                f"formality {text('formality')}"),
        ("18a Funding", text("funding")),
        ("18b Conflicts of interest", text("conflicts_of_interest")),
        ("19 Patient and public involvement", text("patient_involvement")),
        ("Privacy", f"differential privacy epsilon = {spent['epsilon']:.3g}, delta = {spent['delta']:g} per hospital"
                    if spent.get("epsilon") is not None else "no differential privacy (exact benchmark run)"),
    ]
    return {"items": [{"item": item, "text": value} for item, value in items if value]}


LIMITATIONS = [
    "Performance figures come from each hospital's test patients; under differential privacy they carry noise "
    "(see the privacy section), which is large for small hospitals.",
    "The AUC is computed from counts per tenth of predicted risk (ties within a tenth count one half), and the "
    "calibration slope and intercept from the same tenths: both approximate the per-patient values.",
    "Subgroup results sum each hospital's subgroup statistics; a hospital withholds a subgroup with fewer than k_min "
    "patients, so the sum may leave that hospital's patients out (listed with each group). Under differential "
    "privacy, subgroup counts are noisy and small gaps between groups may be noise.",
    "Permutation importance needs exact losses per patient and is computed in exact runs only; under differential "
    "privacy the coefficients explain the model.",
]


def build_report(run: dict, nodes: dict[str, dict], spec: dict | None = None, *, k_min: int = 11) -> dict:
    """The trust report of a completed run (``run`` as the desk's API returns it, outputs released)."""
    if run.get("status") != "completed" or not run.get("result"):
        raise ValueError(f"Run {run.get('id')} has no released outputs (status {run.get('status')!r}); a trust report "
                         "needs a completed run whose outputs were released.")
    spec = spec or {}
    result = RunResult.model_validate(run["result"])
    study = result.study
    # the hospitals that took part; those the feasibility stage left out are in "participation"
    run = {**run, "nodes": [node for node in run["nodes"] if node not in result.left_out]}
    return {
        "schema": SCHEMA,
        "run": {"id": run["id"], "project": project_reference(run), "title": spec.get("title", ""),
                "algorithm": f"{run['algorithm_id']} {run['algorithm_version']}", "code_hash": run["code_hash"],
                "nodes": list(run["nodes"]), "rounds": run["rounds"], "finished_at": _iso(run.get("finished_at")),
                "k_min": k_min,
                "study": None if study is None else {"id": study.id, "sha256": study.sha256,
                                                     "title": {lang: study.title(lang) for lang in LANGS},
                                                     "outcome": {lang: study.outcome(lang) for lang in LANGS}}},
        "model_card": model_card(spec, run, result, nodes),
        "participation": participation(result, nodes, k_min),
        "performance": performance(run, result, nodes, k_min),
        "explanation": explanation(run, result),
        "fairness": fairness(result, k_min),
        "privacy": privacy(run, result),
        "carbon": carbon(result, run.get("finished_at")),
        "limitations": LIMITATIONS,
    }


def _clean(value: object) -> object:
    """NaN and infinities as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(value: object) -> str | None:
    return None if value is None else str(value)
