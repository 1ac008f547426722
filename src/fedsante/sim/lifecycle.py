"""The whole life of a project, scripted: accounts, submission, two reviews, approval, node acceptance.

Used by ``fedsante demo``, the in-process simulation and the tests, so all of them go through the
same governance as a real deployment; nothing here bypasses a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

from fedsante.common.errors import RunFailed
from fedsante.desk.client import DeskClient
from fedsante.desk.registry import ProjectSpec, load_project_file
from fedsante.node import operator
from fedsante.node.config import NodeConfig

EXAMPLE_PROJECT = Path(str(files("fedsante") / "examples" / "project-heart.toml"))
HOLDER_ORG = "Équipe de recherche en cardiologie (démo)"
REVIEWER_ORGS = ("CHU de Strasbourg, guichet IA", "CHRU de Nancy, guichet IA")


@dataclass
class Cast:
    """Accounts of a walkthrough: one client per person, all talking to the same desk."""

    holder: DeskClient
    reviewers: tuple[DeskClient, ...]
    auditor: DeskClient
    names: dict[str, str]
    tokens: dict[str, str]

    async def close(self) -> None:
        for client in (self.holder, *self.reviewers, self.auditor):
            await client.__aexit__()


def example_spec(node_ids: list[str] | None = None, territories: dict[str, str] | None = None) -> ProjectSpec:
    """The packaged example project, optionally re-targeted at other nodes (dataset name = node id)."""
    spec = load_project_file(EXAMPLE_PROJECT)
    if node_ids is None:
        return spec
    datasets = [{"node_id": n, "dataset": n, "justification": "simulation"} for n in node_ids]
    places = sorted({(territories or {}).get(n) or n for n in node_ids})
    return spec.model_copy(update={"datasets": ProjectSpec.model_validate({"datasets": datasets}).datasets,
                                   "territories": places, "claims_regional_value": len(places) > 1})


async def create_cast(admin: DeskClient, *, years: int = 1) -> Cast:
    """Organisations and accounts for a holder, two external reviewers and an auditor."""
    existing = {o["name"] for o in await admin.organisations()}
    for name, kind in ((HOLDER_ORG, "research"), *((org, "desk") for org in REVIEWER_ORGS)):
        if name not in existing:
            await admin.create_organisation(name, kind=kind)
    end = (datetime.now(UTC).date() + timedelta(days=365 * years)).isoformat()
    tokens, names = {}, {}
    for key, name, org, role in (("holder", "dr.martin", HOLDER_ORG, "holder"),
                                 ("reviewer1", "reviewer.strasbourg", REVIEWER_ORGS[0], "reviewer"),
                                 ("reviewer2", "reviewer.nancy", REVIEWER_ORGS[1], "reviewer"),
                                 ("auditor", "dpo.region", REVIEWER_ORGS[0], "auditor")):
        tokens[key] = (await admin.create_account(name, org, role, end))["token"]
        names[key] = name
    return Cast(holder=admin.as_account(tokens["holder"]),
                reviewers=(admin.as_account(tokens["reviewer1"]), admin.as_account(tokens["reviewer2"])),
                auditor=admin.as_account(tokens["auditor"]), names=names, tokens=tokens)


async def submit_and_approve(cast: Cast, spec: ProjectSpec) -> dict:
    """Draft, submit, two approving reviews: returns the approved project."""
    project = await cast.holder.create_project(spec.model_dump(mode="json"))
    reference = project["reference"]
    await cast.holder.transition(reference, "submit", "ready for the desk's review")
    await cast.reviewers[0].review(reference, "approve", "Charter checks pass; clear public-interest case.")
    return await cast.reviewers[1].review(reference, "approve", "Agree; fairness per hospital is requested.")


async def release_outputs(cast: Cast, run_id: str) -> dict:
    """Both reviewers look at the automatic checks and release the run; returns it as the holder sees it."""
    checks = await cast.reviewers[0].run_checks(run_id)
    failing = [c["message"] for c in checks["checks"] if not c["ok"]]
    if failing:
        raise RunFailed(f"Run {run_id} outputs cannot be released: {'; '.join(failing)}")
    for reviewer in cast.reviewers:
        await reviewer.release_run(run_id, "Automatic checks pass; aggregate outputs only.")
    return await cast.holder.run(run_id)


async def prepare_node(cfg: NodeConfig, desk_keys: list[dict]) -> None:
    """The hospital trusts the desk's current key (an operator checks its fingerprint out of band)."""
    for key in desk_keys:
        if key["retired_at"] is None:
            operator.update_policy(cfg, "trust", public_key=key["public_key"], label="regional AI desk")


async def accept_everywhere(configs: list[NodeConfig], reference: str, *, transport=None) -> None:
    for cfg in configs:
        await operator.decide(cfg, reference, "accepted", operator=f"data-officer@{cfg.node_id}",
                              reason="within local policy", transport=transport)
