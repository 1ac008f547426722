"""A live network for the portal tests: a desk and two hospital nodes as real processes, one project
approved, one run completed and released by two reviewers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from fedsante.sim.launcher import Deployment
from fedsante.sim.lifecycle import example_spec


@dataclass
class Live:
    url: str
    reference: str
    run_id: str
    deployment: Deployment


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with Deployment(tmp_path_factory.mktemp("portal"), hospitals=("cleveland", "hungarian"),
                    round_timeout=20) as deployment:
        async def prepare() -> tuple[str, str]:
            spec = example_spec(list(deployment.hospitals)).model_copy(
                update={"parameters": {"rounds": 1}, "parameter_bounds": {}})
            reference, cast = await deployment.approve(spec)
            try:
                run = await cast.holder.start_run(reference)
                await cast.holder.wait_run(run["id"])
                for reviewer in cast.reviewers[:2]:
                    await reviewer.release_run(run["id"], "checked")
                return reference, run["id"]
            finally:
                await cast.close()

        reference, run_id = asyncio.run(prepare())
        yield Live(deployment.desk_url, reference, run_id, deployment)
