"""A study unlike heart disease, on four hospitals' own CSV files, driven through the `fedsante` command only.

Real processes on loopback: a desk and four nodes. Each hospital exports its trial data its own way
(other column names, string categories, an outcome that is a category); two sites are tiny (3 and 20
patients). Nothing in fedsante is changed: datasets are registered, mapped at acceptance and checked
locally; the charter reads the declared variables; the tiny sites are left out before training with
a plain message and no count; the report and the portal speak the study's labels.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from fedsante.sim.launcher import free_port
from test_cli_flow import fedsante, wait_for

pytestmark = pytest.mark.e2e

SITES = {"nord": 200, "sud": 170, "est": 20, "ouest": 3}
STUDY = """
[study]
id = "cardio_trial"
title_fr = "Événement cardiovasculaire à un an dans un essai à quatre centres"
title_en = "Cardiovascular event within a year in a four-centre trial"

[study.outcome]
variable = "event"
label_fr = "Événement cardiovasculaire à un an"
label_en = "Cardiovascular event within a year"
type = "binary"
positive = ["Event"]
negative = ["NoEvent"]

[[study.predictors]]
name = "age"
label_fr = "Âge"
label_en = "Age"
type = "numeric"
unit = "years"
bounds = [18, 100]
justification = "Main confounder of cardiovascular risk."

[[study.predictors]]
name = "sbp"
label_fr = "Pression artérielle systolique"
label_en = "Systolic blood pressure"
type = "numeric"
unit = "mm Hg"
bounds = [70, 250]
justification = "Hypertension is the main modifiable risk factor."

[[study.predictors]]
name = "smoker"
label_fr = "Fumeur"
label_en = "Smoker"
type = "binary"
levels = ["No", "Yes"]
justification = "Smoking is a risk factor the model must adjust for."

[[study.predictors]]
name = "stage"
label_fr = "Stade de la maladie"
label_en = "Disease stage"
type = "categorical"
levels = ["I", "II", "III"]
reference = "I"
justification = "Severity at inclusion."

[[study.predictors]]
name = "ethnicity"
label_fr = "Origine déclarée"
label_en = "Self-reported ethnicity"
type = "categorical"
levels = ["black", "white"]
reference = "white"
sensitive = true
justification = "Needed to check that the model serves every group equally (equity)."

[[study.fairness]]
variable = "ethnicity"
label_fr = "Origine déclarée"
label_en = "Self-reported ethnicity"
groups = [
    { name = "black", label_fr = "Patients noirs", label_en = "Black patients", levels = ["black"] },
    { name = "white", label_fr = "Patients blancs", label_en = "White patients", levels = ["white"] },
]

[[study.filters]]
variable = "age"
op = ">="
value = 18

[study.split]
method = "seeded"
test_fraction = 0.3
seed = 11
"""


def write_site(path: Path, name: str, n: int, rng: np.random.Generator) -> None:
    """A hospital's export: 'sud' names its columns and codes its values its own way."""
    age = rng.integers(30, 90, n)
    sbp = rng.normal(140, 20, n).round()
    smoker = rng.random(n) < 0.3
    stage = rng.choice(["I", "II", "III"], n, p=[0.5, 0.3, 0.2])
    black = rng.random(n) < 0.35
    z = -4.0 + 0.04 * age + 0.01 * (sbp - 140) + 0.8 * smoker + 0.7 * (stage == "II") + 1.4 * (stage == "III")
    event = rng.random(n) < 1 / (1 + np.exp(-z))
    ids = [f"{name}-{i:04d}-{rng.integers(10**6)}" for i in range(n)]
    if name == "sud":
        header = "id;age_years;ethnicity;systolic;smoking;stage;result"
        rows = [f"{i};{a};{'B' if b else 'W'};{s:.0f};{'Y' if k else 'N'};{g};{'1_yes' if e else '0_no'}"
                for i, a, b, s, k, g, e in zip(ids, age, black, sbp, smoker, stage, event)]
    else:
        header = "PatientID;AGE_YRS;Race;SBP;Smoker;Stage;Outcome"
        rows = [f"{i};{a};{'Black' if b else 'White'};{s:.0f};{'Yes' if k else 'No'};{g};{'Event' if e else 'NoEvent'}"
                for i, a, b, s, k, g, e in zip(ids, age, black, sbp, smoker, stage, event)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


MAPS = {
    "sud": ["event=result:{1_yes:Event,0_no:NoEvent}", "age=age_years", "sbp=systolic",
            "smoker=smoking:{Y:Yes,N:No}", "ethnicity=ethnicity:{B:black,W:white}"],
    "other": ["event=Outcome", "age=AGE_YRS", "sbp=SBP", "smoker=Smoker", "stage=Stage",
              "ethnicity=Race:{Black:black,White:white}"],
}


def project_file(template: str, path: Path) -> None:
    """The template with this trial's title, the four hospitals' datasets and the study declared in full."""
    text = re.sub(r'^title = .*$', 'title = "Prédire un événement cardiovasculaire dans un essai à quatre centres"',
                  template, count=1, flags=re.M)
    start = text.index("datasets = [")
    stop = text.index("]\n", text.index('node_id = "va"', start)) + 2
    datasets = ", ".join(f'{{ node_id = "{site}", dataset = "trial_{site}", justification = "Trial centre." }}'
                         for site in SITES)
    text = text[:start] + f"datasets = [{datasets}]\n" + text[stop:]
    text = re.sub(r'^study = .*$', "", text, count=1, flags=re.M)
    path.write_text(text + STUDY, encoding="utf-8")


def test_a_non_heart_study_runs_its_whole_life_through_the_cli_without_code(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    desk_dir = tmp_path / "desk"
    base = {"FEDSANTE_DESK_URL": url}
    admin = {**base, "FEDSANTE_TOKEN_FILE": str(desk_dir / "admin-token")}
    processes = [subprocess.Popen([sys.executable, "-m", "fedsante", "desk", "serve", "--data-dir", str(desk_dir),
                                   "--port", str(port), "--round-timeout", "20"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_for(f"{url}/health")
        end = (datetime.now(UTC).date() + timedelta(days=90)).isoformat()
        for org, kind in (("Equipe essai", "research"), ("CHU Strasbourg", "desk"), ("CHRU Nancy", "desk"),
                          ("Hopitaux du trial", "hospital")):
            fedsante("account", "org", org, "--kind", kind, env=admin)
        tokens = {}
        for name, org, role in (("holder", "Equipe essai", "holder"), ("rev1", "CHU Strasbourg", "reviewer"),
                                ("rev2", "CHRU Nancy", "reviewer")):
            tokens[name] = tmp_path / f"{name}.token"
            fedsante("account", "create", name, "--organisation", org, "--role", role, "--end-date", end,
                     "--save", str(tokens[name]), env=admin)
        as_ = {name: {**base, "FEDSANTE_TOKEN_FILE": str(path)} for name, path in tokens.items()}

        # each hospital: its export, a node, the dataset registered (columns shown locally), registration
        rng = np.random.default_rng(2026)
        configs = {}
        for site, n in SITES.items():
            csv = tmp_path / f"{site}-export.csv"
            write_site(csv, site, n, rng)
            configs[site] = config = tmp_path / f"{site}.toml"
            fedsante("node", "init", "--config", str(config), "--node-id", site, "--dataset", f"trial_{site}",
                     "--data-dir", str(tmp_path / f"{site}-data"), "--desk-url", url)
            id_column = "id" if site == "sud" else "PatientID"
            added = fedsante("node", "dataset", "add", f"trial_{site}", "--path", str(csv), "--delimiter", ";",
                             "--id-column", id_column, "--description", "Trial export", "--config", str(config))
            assert "Race" in added.stdout or "ethnicity" in added.stdout
            fedsante("node", "register", "--config", str(config), "--organisation", "Hopitaux du trial", env=admin)
            fedsante("node", "policy", "trust", "--config", str(config), "--from-desk")
            processes.append(subprocess.Popen([sys.executable, "-m", "fedsante", "node", "serve", "--config",
                                               str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        # the project holder declares the study; the charter reads its variables
        path = tmp_path / "project.toml"
        project_file(fedsante("project", "template").stdout, path)
        submitted = fedsante("project", "submit", str(path), env=as_["holder"]).stdout
        reference = submitted.split()[1]
        shown = " ".join(fedsante("project", "show", reference, env=as_["rev1"]).stdout.split())
        assert "FLAG" in shown and "ethnicity" in shown  # the sensitive variable, flagged for the reviewers
        fedsante("review", "approve", reference, "-m", "Clear purpose.", env=as_["rev1"])
        assert "approved" in fedsante("review", "approve", reference, "-m", "Agree.", env=as_["rev2"]).stdout

        # each data officer checks locally what the study would see, then accepts with a mapping
        unmapped = fedsante("node", "check", "--project", reference, "--config", str(configs["sud"]), ok=False)
        assert unmapped.returncode == 1 and "mapping problem" in unmapped.stdout
        check = fedsante("node", "check", "--project", reference, "--config", str(configs["sud"]),
                         *sum((["--map", m] for m in MAPS["sud"]), [])).stdout
        assert "training rows" in check and "mapping problem" not in check
        tiny = fedsante("node", "check", "--project", reference, "--config", str(configs["ouest"]),
                        *sum((["--map", m] for m in MAPS["other"]), [])).stdout
        assert "BELOW k_min = 11" in tiny
        for site, config in configs.items():
            maps = MAPS["sud" if site == "sud" else "other"]
            fedsante("node", "accept", reference, "--config", str(config), "--operator", f"DPO {site}",
                     *sum((["--map", m] for m in maps), []))

        # the run: the tiny sites are left out before training, in plain words and without a count
        run = " ".join(fedsante("run", "start", "--project", reference, env=as_["holder"]).stdout.split())
        assert "completed" in run
        for site in ("est", "ouest"):
            assert re.search(rf"{site} has fewer than k_min = 11 patients among its (training|test) rows: left out",
                             run), run
        run_id = run.split("Run ")[1].split()[0]
        shown = httpx.get(f"{url}/api/v1/runs/{run_id}", headers={
            "authorization": f"Bearer {tokens['holder'].read_text().strip()}"}).json()
        assert set(shown["left_out"]) == {"est", "ouest"}
        assert not re.search(r"\d", " ".join(shown["left_out"].values()).replace("k_min = 11", ""))

        # release by two reviewers, then the report in the study's words
        fedsante("run", "release", run_id, env=as_["rev1"])
        assert "released." in fedsante("run", "release", run_id, env=as_["rev2"]).stdout
        fedsante("report", run_id, "--out", str(tmp_path / "report"), env=as_["holder"])
        report = json.loads((tmp_path / "report" / "trust-report.json").read_text())
        hospitals = report["performance"]["hospitals"]
        assert set(hospitals) == {"nord", "sud"} and report["run"]["nodes"] == ["nord", "sud"]
        left = {entry["node"]: entry for entry in report["participation"]["left_out"]}
        assert set(left) == {"est", "ouest"}  # listed with their reason in both languages, no figure
        assert all("k_min = 11" in e["text"]["fr"] and "k_min = 11" in e["text"]["en"] for e in left.values())
        for site in ("nord", "sud"):  # took part (a hospital's own figures may be withheld under the DP noise)
            assert hospitals[site]["metrics"] is not None or "left out" not in hospitals[site]["reason"]
        assert report["performance"]["pooled"]["sites"] == ["nord", "sud"]
        released = httpx.get(f"{url}/api/v1/runs/{run_id}", headers={
            "authorization": f"Bearer {tokens['holder'].read_text().strip()}"}).json()["result"]
        assert set(released["node_metrics"]) == {"nord", "sud"}  # the sites left out sent nothing to evaluate
        public_n = sum(released["node_metrics"][s]["n"] for s in ("nord", "sud"))
        assert report["performance"]["pooled"]["metrics"]["n"] == public_n > 60
        french = (tmp_path / "report" / "trust-report.fr.html").read_text()
        for label in ("Événement cardiovasculaire à un an", "Stade de la maladie : III", "Fumeur",
                      "Pression artérielle systolique"):
            assert label in french  # the study's labels, not the raw codes
        assert ">stage=III<" not in french and ">smoker<" not in french
        assert "Disease stage: III" in (tmp_path / "report" / "trust-report.html").read_text()

        # the public portal: the project and its released run, no count for the sites left out
        page = httpx.get(f"{url}/projets/{reference}.json").json()
        public = json.dumps(page)
        assert reference in public
        for site in ("est", "ouest"):
            assert f'"{site}": {{"n"' not in public
        page = httpx.get(f"{url}/projets/{reference}/rapport/{run_id}")
        assert page.status_code == 200 and "Stade de la maladie" in page.text
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
