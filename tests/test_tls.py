"""TLS: the desk serves HTTPS with a certificate of a local CA, nodes pin that CA, plain HTTP stays on loopback."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fedsante.common.errors import ConfigError
from fedsante.common.tls import is_loopback, make_local_ca, pinned_context
from fedsante.node.config import load_config
from fedsante.sim.launcher import free_port
from test_cli_flow import fedsante, wait_for


def test_a_local_ca_signs_the_desks_certificate_and_its_key_is_private(tmp_path: Path) -> None:
    files = make_local_ca(tmp_path / "tls", ("127.0.0.1", "localhost", "desk.chu.example"))
    assert files.server_key.stat().st_mode & 0o777 == 0o600
    context = pinned_context(files.ca_cert)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with pytest.raises(ConfigError, match="exists already"):
        make_local_ca(tmp_path / "tls")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("[::1]", True), ("10.0.0.5", False), ("desk.example", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _node_config(tmp_path: Path, desk_url: str, extra: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'node_id = "va"\ndesk_url = "{desk_url}"\ndata_dir = "d"\ndataset = "va"\n{extra}')
    return path


def test_a_node_refuses_plain_http_to_another_machine_unless_told_it_is_a_test_network(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plain http:// to another machine; use https://"):
        load_config(_node_config(tmp_path, "http://10.0.0.5:8700"))
    assert load_config(_node_config(tmp_path, "http://10.0.0.5:8700", "allow_insecure_http = true\n"))
    assert load_config(_node_config(tmp_path, "http://127.0.0.1:8700")).verify() is True
    assert load_config(_node_config(tmp_path, "https://desk.example:8700")).verify() is True  # system trust store


def test_desk_serve_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    done = fedsante("desk", "serve", "--data-dir", str(tmp_path / "desk"), "--host", "0.0.0.0", ok=False)
    assert done.returncode == 1 and "Refusing to serve plain HTTP on 0.0.0.0" in " ".join(done.stderr.split())


@pytest.mark.e2e
def test_a_node_pinned_to_the_desks_ca_talks_to_it_over_https_and_nothing_else_does(tmp_path: Path) -> None:
    # Prepare: a CA and a desk serving HTTPS on loopback
    desk_dir, port = tmp_path / "desk", free_port()
    fedsante("desk", "tls", "init", "--data-dir", str(desk_dir))
    tls = desk_dir / "tls"
    desk = subprocess.Popen([sys.executable, "-m", "fedsante", "desk", "serve", "--data-dir", str(desk_dir),
                             "--port", str(port), "--tls-cert", str(tls / "desk.pem"), "--tls-key",
                             str(tls / "desk-key.pem")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"https://127.0.0.1:{port}"
    try:
        _wait_https(url, tls / "ca.pem")

        # Assert: pinned, it answers; with the system's trust store or in plain HTTP, nothing goes through
        assert httpx.get(f"{url}/health", verify=pinned_context(tls / "ca.pem")).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/health")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=3)

        # a node initialised with the CA registers and trusts the desk's key over HTTPS
        config = tmp_path / "va.toml"
        admin = {"FEDSANTE_DESK_URL": url, "FEDSANTE_TOKEN_FILE": str(desk_dir / "admin-token"),
                 "FEDSANTE_DESK_CA": str(tls / "ca.pem")}
        fedsante("node", "init", "--config", str(config), "--node-id", "va", "--dataset", "va", "--data-dir",
                 str(tmp_path / "va-data"), "--desk-url", url, "--desk-ca", str(tls / "ca.pem"))
        fedsante("account", "org", "VA", "--kind", "hospital", env=admin)
        fedsante("node", "register", "--config", str(config), "--organisation", "VA", env=admin)
        assert "Trusting desk key" in fedsante("node", "policy", "trust", "--config", str(config),
                                               "--from-desk").stdout

        # the same node pinned to another CA refuses the desk
        other = make_local_ca(tmp_path / "other-ca")
        config.write_text(config.read_text().replace(str(tls / "ca.pem"), str(other.ca_cert)))
        refused = fedsante("node", "policy", "trust", "--config", str(config), "--from-desk", ok=False)
        assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in " ".join(refused.stderr.split())
    finally:
        desk.terminate()
        desk.wait(timeout=10)


def _wait_https(url: str, ca: Path, timeout: float = 20) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", verify=pinned_context(ca), timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.1)
