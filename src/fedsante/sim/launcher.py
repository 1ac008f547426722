"""Start and stop a local deployment: one desk and N node processes on loopback.

Used by ``fedsante demo``, ``fedsante bench protocol`` and the end-to-end tests. Every process it
starts is stopped on exit, even after an error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fedsante.common.errors import FedsanteError
from fedsante.common.tls import make_local_ca, pinned_context
from fedsante.data.heart import HOSPITALS
from fedsante.desk.client import DeskClient
from fedsante.node.config import NodeConfig, load_config
from fedsante.node.operator import init_node
from fedsante.sim import lifecycle

HOSPITAL_NAMES = {
    "cleveland": ("Cleveland Clinic Foundation", "Ohio, USA"),
    "hungarian": ("Hungarian Institute of Cardiology, Budapest", "Budapest, Hungary"),
    "switzerland": ("University Hospitals of Zurich and Basel", "Zurich and Basel, Switzerland"),
    "va": ("V.A. Medical Center, Long Beach", "California, USA"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Deployment:
    """A desk and nodes running as separate processes under ``out_dir``."""

    out_dir: Path
    hospitals: tuple[str, ...] = HOSPITALS
    round_timeout: float = 30.0
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    tls: bool = False  # HTTPS with a local CA (desk tls init) that every node pins, as a deployment would

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir).resolve()

    @property
    def desk_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def tls_dir(self) -> Path:
        return self.out_dir / "desk" / "tls"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """How this deployment's own clients check the desk: the local CA when it serves HTTPS."""
        return pinned_context(self.tls_dir / "ca.pem") if self.tls else True

    @property
    def token(self) -> str:
        return (self.out_dir / "desk" / "admin-token").read_text().strip()

    def client(self) -> DeskClient:
        return DeskClient(self.desk_url, self.token, verify=self.verify)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        logs = self.out_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "fedsante", *args], stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def start_desk(self, timeout: float = 20.0) -> None:
        tls = ["--tls-cert", str(self.tls_dir / "desk.pem"), "--tls-key", str(self.tls_dir / "desk-key.pem")]
        self._spawn("desk", ["desk", "serve", "--data-dir", str(self.out_dir / "desk"), "--port", str(self.port),
                             "--round-timeout", f"{self.round_timeout:g}", *(tls if self.tls else [])])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["desk"].poll() is not None:
                raise FedsanteError(f"The desk exited at start-up; see {self.out_dir / 'logs' / 'desk.log'}.")
            try:
                if httpx.get(f"{self.desk_url}/health", timeout=1, verify=self.verify).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise FedsanteError(f"The desk did not answer on {self.desk_url} within {timeout:g} s.")

    async def register_nodes(self) -> None:
        """Create each node's config and key, and register organisations and nodes at the desk."""
        async with self.client() as desk:
            for hospital in self.hospitals:
                name, territory = HOSPITAL_NAMES.get(hospital, (hospital, ""))
                config = NodeConfig(node_id=hospital, desk_url=self.desk_url, dataset=hospital,
                                    data_dir=self.out_dir / "nodes" / hospital, hospital_name=name,
                                    territory=territory, poll_seconds=5,
                                    desk_ca=self.tls_dir / "ca.pem" if self.tls else None)
                public_key = init_node(config, self.config_path(hospital))
                await desk.create_organisation(name)
                await desk.register_node(hospital, name, public_key, hospital_name=name, territory=territory)
                await lifecycle.prepare_node(config, await desk.keys())

    async def approve(self, spec=None, *, accept: tuple[str, ...] | None = None) -> tuple[str, lifecycle.Cast]:
        """Take a project through review to approval and acceptance at the nodes in ``accept`` (default all).

        Returns the project reference and the accounts' clients (close them with ``cast.close()``).
        """
        spec = spec or lifecycle.example_spec(list(self.hospitals), {h: HOSPITAL_NAMES.get(h, (h, h))[1] for h in self.hospitals})
        async with self.client() as desk:
            cast = await lifecycle.create_cast(desk)
        project = await lifecycle.submit_and_approve(cast, spec)
        configs = [load_config(self.config_path(h)) for h in (self.hospitals if accept is None else accept)]
        await lifecycle.accept_everywhere(configs, project["reference"])
        return project["reference"], cast

    def config_path(self, hospital: str) -> Path:
        return self.out_dir / "nodes" / f"{hospital}.toml"

    def start_nodes(self) -> None:
        for hospital in self.hospitals:
            self._spawn(hospital, ["node", "serve", "--config", str(self.config_path(hospital))])

    def wait_for_nodes(self, timeout: float = 30.0) -> None:
        """Wait until every node polls the desk; fail fast, naming its log, if a node process exits."""
        deadline = time.monotonic() + timeout
        headers = {"authorization": f"Bearer {self.token}"}
        while True:
            for hospital in self.hospitals:
                if self.processes[hospital].poll() is not None:
                    log = self.out_dir / "logs" / f"{hospital}.log"
                    last = log.read_text(errors="replace").strip().splitlines()[-3:]
                    raise FedsanteError(f"Node {hospital} exited at start-up; {log} ends with: {' '.join(last)}")
            nodes = httpx.get(f"{self.desk_url}/api/v1/nodes", headers=headers, timeout=5, verify=self.verify).json()
            missing = [n["node_id"] for n in nodes if n["node_id"] in self.hospitals and not n["connected"]]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise FedsanteError(f"Node(s) {', '.join(missing)} did not connect within {timeout:g} s; "
                                    f"see their logs in {self.out_dir / 'logs'}.")
            time.sleep(0.05)

    def start(self) -> None:
        """Start a fresh desk, register the nodes, start them and wait until all are connected."""
        for previous in ("desk", "nodes", "logs"):  # a deployment never reuses an earlier one's state
            shutil.rmtree(self.out_dir / previous, ignore_errors=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.tls:
            make_local_ca(self.tls_dir)
        self.start_desk()
        asyncio.run(self.register_nodes())
        self.start_nodes()
        self.wait_for_nodes()

    def stop(self, name: str | None = None) -> None:
        """Stop one process (by name) or all of them: SIGTERM, then SIGKILL after 5 s."""
        names = [name] if name else list(self.processes)
        for n in names:
            if self.processes[n].poll() is None:
                self.processes[n].terminate()
        for n in names:
            try:
                self.processes[n].wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.processes[n].kill()
                self.processes[n].wait()

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
