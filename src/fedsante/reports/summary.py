"""The trust report (:mod:`fedsante.reports.trust`) in four to nine plain sentences, in French or English."""

from __future__ import annotations

import math

from fedsante.reports._format import (TEXTS, checked, direction, fmt, hospital_labels, join, label, lower_first,
                                      noise_sd, shown)

__all__ = ["summary"]

_S = {  # the plain-language summary, sentence by sentence
    "en": {
        "purpose": "This model was trained across {k} {hospitals} ({names}) for one purpose: “{title}”.",
        "purpose_untitled": "This model was trained across {k} {hospitals} ({names}).",
        "overall": "On {n} test patients from all hospitals, its {AUC} was {auc}, between {low} and {high} allowing "
                   "for uncertainty{noise}; 0.5 would be chance and 1 a perfect ranking.",
        "overall_noise": ", give or take {sd} more for the privacy noise",
        "noisy_sites": "Differences between hospitals (AUC from {low} to {high}) cannot be told apart from the privacy "
                       "noise.",
        "cal_noisy": "How closely its predicted risks match what was observed cannot be told through the privacy "
                     "noise.",
        "overall_hidden": "Its overall results are not published because too few patients were tested (fewer than "
                          "{k_min} in a group or class).",
        "overall_na": "Its overall AUC could not be computed.",
        "weakest": "It did less well for the patients of {label} (AUC {auc}, {gap} below all hospitals together).",
        "similar": "Its {AUC} was similar from one hospital to another, from {low} to {high}.",
        "single": "The only hospital with its own published result is {label}, where its {AUC} was {auc}.",
        "hidden": "the results of {names} are not shown because too few patients were tested there",
        "all_hidden": "No hospital's own results are published because too few patients were tested at each.",
        "cal_good": "On average, its predicted risks matched what was observed: for every 100 cases of the disease it "
                    "predicted, {per100} were observed",
        "cal_under": "On average, it underestimated risk: for every 100 cases of the disease it predicted, {per100} "
                     "were observed",
        "cal_over": "On average, it overestimated risk: for every 100 cases of the disease it predicted, only {per100} "
                    "were observed",
        "cal_none": "How closely its predicted risks match what was observed could not be measured.",
        "extreme": "; its predictions were too extreme, high risks too high and low risks too low",
        "timid": "; its predictions were too cautious, too close to the average",
        "dp": "Patient data never left the hospitals: only model parameters and group statistics were shared, with "
              "random noise added to protect each patient, for a privacy budget of ε = {eps}{approved} (the smaller "
              "ε, the stronger the protection).",
        "approved": ", within the approved {approved}",
        "exact": "Patient data never left the hospitals: only model parameters and group statistics were shared; no "
                 "random noise was added for privacy in this run, so no privacy budget ε applies.",
        "factors": "The factors that weigh most in its predictions are {factors}.",
        "fair_flag": "Its results differed between groups of patients ({attrs}) by more than the charter allows; the "
                     "report details these gaps.",
        "fair_ok": "Its results were similar across the groups of patients that could be compared ({attrs}), within "
                   "the charter's tolerance{noise}.",
        "fair_noise": " and the precision that the privacy noise allows",
        "fair_noisy": "Differences between groups of patients ({attrs}) cannot be told apart from the privacy noise.",
        "fair_none": "Too few patients were tested to compare groups of patients ({attrs}).",
        "attrs": {"sex": "by sex", "age": "by age band"}, "by": "by {}",
        "outcome": "The outcome it predicts is “{outcome}”.",
        "left_out": "Some hospitals were left out of this run: {reasons}",
        "notes": "Some hospitals' own figures are partly withheld: {reasons}",
        "limits": "The full report lists the limits of these results.",
    },
    "fr": {
        "purpose": "Ce modèle a été entraîné dans {k} {hospitals} ({names}) dans un but précis : « {title} ».",
        "purpose_untitled": "Ce modèle a été entraîné dans {k} {hospitals} ({names}).",
        "overall": "Sur {n} patients de test de l'ensemble des hôpitaux, son {AUC} est de {auc}, entre {low} et {high} "
                   "compte tenu de l'incertitude{noise} ; 0,5 correspondrait au hasard et 1 à un classement parfait.",
        "overall_noise": ", à {sd} près en plus du fait du bruit de confidentialité",
        "noisy_sites": "Les écarts entre hôpitaux (AUC de {low} à {high}) ne se distinguent pas du bruit de "
                       "confidentialité.",
        "cal_noisy": "L'accord entre les risques annoncés et ce qui a été observé ne se distingue pas du bruit de "
                     "confidentialité.",
        "overall_hidden": "Ses résultats d'ensemble ne sont pas publiés car trop peu de patients ont été testés (moins "
                          "de {k_min} dans un groupe ou une classe).",
        "overall_na": "Son AUC d'ensemble n'a pas pu être calculée.",
        "weakest": "Il a été moins performant pour les patients de {label} (AUC de {auc}, soit {gap} de moins que "
                   "l'ensemble des hôpitaux).",
        "similar": "Son {AUC} est comparable d'un hôpital à l'autre, de {low} à {high}.",
        "single": "Le seul hôpital dont le résultat propre est publié est {label}, où son {AUC} est de {auc}.",
        "hidden": "les résultats de {names} ne sont pas montrés car trop peu de patients y ont été testés",
        "all_hidden": "Aucun résultat propre à un hôpital n'est publié, faute d'assez de patients testés dans chacun.",
        "cal_good": "En moyenne, les risques annoncés correspondent à ce qui a été observé : pour 100 cas de maladie "
                    "prévus, {per100} ont été observés",
        "cal_under": "En moyenne, le modèle sous-estime le risque : pour 100 cas de maladie prévus, {per100} ont été "
                     "observés",
        "cal_over": "En moyenne, le modèle surestime le risque : pour 100 cas de maladie prévus, seulement "
                    "{per100} ont été observés",
        "cal_none": "L'accord entre les risques annoncés et ce qui a été observé n'a pas pu être mesuré.",
        "extreme": " ; ses prédictions sont trop tranchées, les risques élevés trop hauts et les faibles trop bas",
        "timid": " ; ses prédictions sont trop prudentes, trop proches de la moyenne",
        "dp": "Les données des patients n'ont jamais quitté les hôpitaux : seuls les paramètres du modèle et des "
              "statistiques de groupe ont été partagés, avec un bruit aléatoire ajouté pour protéger chaque patient, "
              "pour un budget de confidentialité ε = {eps}{approved} (plus ε est petit, plus la protection est forte).",
        "approved": ", dans la limite autorisée de {approved}",
        "exact": "Les données des patients n'ont jamais quitté les hôpitaux : seuls les paramètres du modèle et des "
                 "statistiques de groupe ont été partagés ; aucun bruit aléatoire n'a été ajouté dans cette analyse, "
                 "donc aucun budget de confidentialité ε ne s'applique.",
        "factors": "Les facteurs qui pèsent le plus dans ses prédictions sont : {factors}.",
        "fair_flag": "Ses résultats diffèrent entre groupes de patients ({attrs}) plus que la charte ne le permet ; "
                     "le rapport détaille ces écarts.",
        "fair_ok": "Ses résultats sont comparables entre les groupes de patients qui ont pu être comparés ({attrs}), "
                   "dans la tolérance de la charte{noise}.",
        "fair_noise": " et dans la précision que permet le bruit de confidentialité",
        "fair_noisy": "Les écarts entre groupes de patients ({attrs}) ne se distinguent pas du bruit de confidentialité.",
        "fair_none": "Trop peu de patients ont été testés pour comparer des groupes de patients ({attrs}).",
        "attrs": {"sex": "par sexe", "age": "par tranche d'âge"}, "by": "par {}",
        "outcome": "L'événement qu'il prédit est « {outcome} ».",
        "left_out": "Des hôpitaux ont été écartés de cette analyse : {reasons}",
        "notes": "Une partie des résultats propres de certains hôpitaux n'est pas publiée : {reasons}",
        "limits": "Le rapport complet détaille les limites de ces résultats.",
    },
}


def summary(report: dict, lang: str = "fr") -> str:
    """Four to seven plain sentences for a patient: purpose, overall AUC, hospitals, calibration, privacy, factors."""
    report = checked(report, lang)
    s, t, labels = _S[lang], TEXTS[lang], hospital_labels(report)
    num = lambda v, d=2: fmt(v, d, t["na"], lang)  # noqa: E731
    run, perf = report.get("run") or {}, report.get("performance") or {}
    k = len(labels)
    names = join(list(labels.values()), lang) if labels else t["na"]
    title = (run.get("title") or "").strip().rstrip(".")
    out = [s["purpose" if title else "purpose_untitled"].format(
        k=k, hospitals=t["hospital" if k == 1 else "hospitals"], names=names, title=title)]
    out.extend(_study_sentences(report, s, lang))
    explained = False

    def auc_word() -> str:
        nonlocal explained
        word, explained = ("AUC" if explained else t["AUC_explained"]), True
        return word

    pooled = shown(perf.get("pooled"))
    if pooled and pooled.get("auc") is not None:
        sd = noise_sd(perf.get("pooled"), "auc")
        out.append(s["overall"].format(n=num(pooled.get("n"), 0), AUC=auc_word(), auc=num(pooled["auc"]),
                                       low=num(pooled.get("auc_ci_low")), high=num(pooled.get("auc_ci_high")),
                                       noise="" if sd is None else s["overall_noise"].format(sd=num(sd))))
    else:
        out.append(s["overall_na" if pooled else "overall_hidden"].format(k_min=run.get("k_min") or 11))
    hospitals = perf.get("hospitals") or {}
    aucs = [(labels.get(n, n), m["auc"], noise_sd(h, "auc")) for n, h in hospitals.items()
            if (m := shown(h)) and m.get("auc") is not None]
    hidden = [labels.get(n, n) for n, h in hospitals.items() if shown(h) is None]
    sentence = None
    if aucs:
        worst = min(aucs, key=lambda row: row[1])
        lowest, highest = worst[1], max(row[1] for row in aucs)
        noisy = worst[2] is not None
        clear = not noisy or (pooled and pooled.get("auc") is not None
                              and pooled["auc"] - lowest > 1.96 * math.hypot(worst[2], noise_sd(perf.get("pooled"), "auc") or 0))
        if noisy and not clear and len(aucs) > 1:
            sentence = s["noisy_sites"].format(low=num(lowest), high=num(highest))
        elif pooled and pooled.get("auc") is not None and round(pooled["auc"] - lowest, 9) >= 0.05 and len(aucs) > 1:
            sentence = s["weakest"].format(label=worst[0], auc=num(lowest), gap=num(pooled["auc"] - lowest))
        elif len(aucs) > 1:
            sentence = s["similar"].format(AUC=auc_word(), low=num(lowest), high=num(highest))
        else:
            sentence = s["single"].format(label=worst[0], AUC=auc_word(), auc=num(lowest))
    if sentence and hidden:
        glue = "; " if lang == "en" else "\u00a0; "
        sentence = sentence[:-1] + glue + s["hidden"].format(names=join(hidden, lang)) + "."
    elif hidden:
        sentence = s["all_hidden"]
    if sentence:
        out.append(sentence)
    oe = pooled.get("oe_ratio") if pooled else None
    oe_sd = noise_sd(perf.get("pooled"), "oe_ratio")
    if oe is None:
        out.append(s["cal_none"])
    elif oe_sd is not None and abs(oe - 1) <= 1.96 * oe_sd:
        out.append(s["cal_noisy"])
    else:
        kind = "cal_good" if 0.9 <= oe <= 1.1 else "cal_under" if oe > 1.1 else "cal_over"
        slope = pooled.get("calibration_slope")
        tail = "" if slope is None else s["extreme"] if slope < 0.8 else s["timid"] if slope > 1.25 else ""
        out.append(s[kind].format(per100=num(100 * oe, 0)) + tail + ".")
    privacy = report.get("privacy") or {}
    if privacy.get("epsilon") is not None:
        approved = privacy.get("approved_epsilon")
        out.append(s["dp"].format(eps=num(privacy["epsilon"]),
                                  approved="" if approved is None else s["approved"].format(approved=num(approved))))
    else:
        out.append(s["exact"])
    features = [f for f in (report.get("explanation") or {}).get("features") or [] if f.get("coef") is not None][:3]
    if features:
        out.append(s["factors"].format(factors=join([f"{label(f, lang)} ({t.get(d := direction(f), d)})"
                                                      for f in features], lang)))
    fairness = _fairness_sentence(report.get("fairness"), s, lang)
    if fairness:
        out.append(fairness)
    if report.get("limitations"):
        out.append(s["limits"])
    return " ".join(out)


def _fairness_sentence(fairness: dict | None, s: dict, lang: str) -> str | None:
    """Whether groups of patients fared alike: flagged gaps, none, or no group comparable."""
    attributes = (fairness or {}).get("attributes") or []
    if not attributes:
        return None
    def words(chosen: list[dict]) -> str:
        return join([s["by"].format(lower_first(name)) if (name := label(a, lang, fallback=""))
                     else s["attrs"].get(a["name"], a["name"]) for a in chosen], lang)

    flagged = [a for a in attributes if a.get("flags")]
    compared = [a for a in attributes if any((g or {}).get("gap") is not None for g in a["gaps"].values())]
    if flagged:
        return s["fair_flag"].format(attrs=words(flagged))
    noisy = [a for a in attributes if a.get("within_noise")]
    if noisy:
        return s["fair_noisy"].format(attrs=words(noisy))
    if compared:
        return s["fair_ok"].format(attrs=words(compared), noise=s["fair_noise"] if fairness.get("noise_sd") else "")
    return s["fair_none"].format(attrs=words(attributes))


def _study_sentences(report: dict, s: dict, lang: str) -> list[str]:
    """The outcome the model predicts (the study's label), then the hospitals left out and why, in plain words."""
    out = []
    outcome = (((report.get("run") or {}).get("study") or {}).get("outcome") or {}).get(lang)
    if outcome:
        out.append(s["outcome"].format(outcome=outcome.strip().rstrip(".")))
    part = report.get("participation") or {}
    for key in ("left_out", "notes"):
        reasons = [(item.get("text") or {}).get(lang) or "" for item in part.get(key) or []]
        if any(reasons):
            out.append(s[key].format(reasons=" ".join(r for r in reasons if r)))
    return out


