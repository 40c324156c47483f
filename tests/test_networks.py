"""Networks as companies run them: proxies from the environment, private CAs, clear errors.

Everything runs on loopback: the emulator (plain, or serving TLS with a test
CA from trustme) and the test suite's own proxy (tests/proxies.py), which
forwards plain requests, tunnels CONNECT and records what it was asked.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from aioresponses import aioresponses
from proxies import ProxyThread
from support import run_cli

from fwprep import (
    CertificateError,
    ConfigError,
    ConnectError,
    FireworksClient,
    ProxyAuthenticationError,
    RetryPolicy,
)
from fwprep.emulator import EmulatorThread
from fwprep.transport import _bypassed, proxy_for, show_proxy

MODEL = "accounts/acme/models/m"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A test CA's bundle, and a certificate and key it signed for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    bundle, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    authority.cert_pem.write_to_path(str(bundle))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return bundle, cert, key


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emulator:
        yield emulator


@pytest.fixture
def tls_emu(ca: tuple[Path, Path, Path]) -> Iterator[EmulatorThread]:
    _, cert, key = ca
    with EmulatorThread(tls_cert=cert, tls_key=key) as emulator:
        yield emulator


async def prepare(emulator: EmulatorThread, **options: object) -> None:
    async with FireworksClient(emulator.api_key, base_url=emulator.base_url, **options) as c:  # type: ignore[arg-type]
        await c.prepare_model(MODEL, "fp8")


# -- which proxy, if any ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("api.fireworks.ai", 443, "", False),
        ("api.fireworks.ai", 443, "*", True),
        ("api.fireworks.ai", 443, "fireworks.ai", True),
        ("api.fireworks.ai", 443, ".fireworks.ai", True),
        ("api.fireworks.ai", 443, "other.ai, FIREWORKS.AI ", True),
        ("notfireworks.ai", 443, "fireworks.ai", False),
        ("api.fireworks.ai", 443, "api.fireworks.ai:8443", False),
        ("api.fireworks.ai", 8443, "api.fireworks.ai:8443", True),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("11.1.2.3", 80, "10.0.0.0/8", False),
        ("::1", 80, "[::1]", True),
    ],
)
def test_no_proxy_names_hosts_domains_ports_and_networks(
    host: str, port: int, no_proxy: str, bypassed: bool
) -> None:
    assert _bypassed(host, port, no_proxy) is bypassed


def test_the_environment_picks_the_proxy_by_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:3128")
    monkeypatch.setenv("http_proxy", "plain:3128")  # no scheme: http://
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert proxy_for("https://api.fireworks.ai") == "http://secure:3128"
    assert proxy_for("http://127.0.0.1:8080") == "http://plain:3128"
    assert proxy_for("https://api.internal.example") is None
    assert proxy_for("https://api.fireworks.ai", None) is None
    assert proxy_for("https://api.fireworks.ai", "http://given:1") == "http://given:1"
    assert proxy_for("https://api.fireworks.ai", "") is None


def test_a_proxy_password_is_never_shown() -> None:
    assert show_proxy("http://ann:s3cret@proxy:3128") == "http://ann:***@proxy:3128"
    assert show_proxy("http://proxy:3128") == "http://proxy:3128"


# -- a forward proxy for plain http -----------------------------------------------------------


async def test_requests_go_through_the_environments_proxy(
    emu: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ProxyThread() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        await prepare(emu)
    (head,) = proxy.heads
    assert (head.method, head.target) == ("POST", f"{emu.base_url}/v1/{MODEL}:prepare")
    assert emu.stats.prepare_successes[f"{MODEL}@FP8"] == 1


@pytest.mark.parametrize("around", ["no_proxy", "proxy=None"])
async def test_requests_go_around_the_proxy_when_told(
    emu: EmulatorThread, monkeypatch: pytest.MonkeyPatch, around: str
) -> None:
    with ProxyThread() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        if around == "no_proxy":
            monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
            await prepare(emu)
        else:
            await prepare(emu, proxy=None)
    assert proxy.heads == []
    assert emu.stats.prepare_successes[f"{MODEL}@FP8"] == 1


async def test_credentials_in_the_proxy_url_go_to_the_proxy(emu: EmulatorThread) -> None:
    with ProxyThread(credentials="ann:s3cret") as proxy:
        await prepare(emu, proxy=f"http://ann:s3cret@127.0.0.1:{proxy.port}")
    (head,) = proxy.heads
    assert head.headers["proxy-authorization"] == "Basic YW5uOnMzY3JldA=="


async def test_a_proxy_asking_for_credentials_is_one_clear_error(emu: EmulatorThread) -> None:
    with ProxyThread(credentials="ann:s3cret") as proxy:
        with pytest.raises(ProxyAuthenticationError) as info:
            await prepare(emu, proxy=f"http://ann:wrong@127.0.0.1:{proxy.port}")
    assert len(proxy.heads) == 1  # not retried: every retry would be refused alike
    assert "asked for credentials (407)" in str(info.value)
    assert "wrong" not in str(info.value)
    assert emu.stats.prepare_successes == {}


def test_the_command_line_halts_on_a_407_and_never_prints_the_password(
    emu: EmulatorThread, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,fp8\nm3,fp8\n")
    with ProxyThread(credentials="ann:s3cret") as proxy:
        code, out, err = run_cli(
            capsys,
            "batch",
            str(manifest),
            "-a",
            "acme",
            "-j",
            "1",
            "--api-key",
            emu.api_key,
            "--base-url",
            emu.base_url,
            "--proxy",
            f"http://ann:wrong@127.0.0.1:{proxy.port}",
            "-v",
        )
    assert code == 3
    assert "halted: " in out + err
    assert f"through the proxy http://ann:***@127.0.0.1:{proxy.port}" in err
    assert "wrong" not in out + err
    assert "Traceback" not in err


def test_the_command_line_reads_the_proxy_from_the_environment_and_ignores_it_when_told(
    emu: EmulatorThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["prepare", MODEL, "-p", "fp8", "--api-key", emu.api_key, "--base-url", emu.base_url]
    with ProxyThread() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert run_cli(capsys, *argv)[0] == 0
        assert len(proxy.heads) == 1
        assert run_cli(capsys, *argv, "--proxy", "")[0] == 0
        assert len(proxy.heads) == 1  # --proxy '': straight to the server
    assert emu.stats.prepare_successes[f"{MODEL}@FP8"] == 2


async def test_a_proxy_that_refuses_connections_is_said_and_retried(emu: EmulatorThread) -> None:
    with ProxyThread() as closed:
        port = closed.port
    refused = f"cannot connect to the proxy http://127.0.0.1:{port}: Connection refused"
    with pytest.raises(ConnectError, match=refused):
        await prepare(emu, proxy=f"http://127.0.0.1:{port}")


# -- TLS, a private CA, and a CONNECT tunnel ----------------------------------------------------


async def test_an_unknown_ca_is_a_certificate_error_that_names_the_fix(
    tls_emu: EmulatorThread,
) -> None:
    assert tls_emu.base_url.startswith("https://127.0.0.1:")
    with pytest.raises(CertificateError) as info:
        await prepare(tls_emu)
    message = str(info.value)
    assert "the TLS certificate of 127.0.0.1 did not verify" in message
    assert "--ca-bundle or SSL_CERT_FILE" in message
    assert tls_emu.stats.prepare_successes == {}


async def test_a_ca_bundle_makes_the_server_trusted(
    tls_emu: EmulatorThread, ca: tuple[Path, Path, Path]
) -> None:
    await prepare(tls_emu, ca_bundle=ca[0])
    assert tls_emu.stats.prepare_successes[f"{MODEL}@FP8"] == 1


def test_a_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the CA bundle"):
        FireworksClient("k", ca_bundle=tmp_path / "none.pem")


def test_ssl_cert_file_is_honoured_and_a_cert_failure_halts_a_batch(
    tls_emu: EmulatorThread, ca: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,fp8\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREWORKS_", "SSL_CERT"))}
    env.update(FIREWORKS_API_KEY=tls_emu.api_key, FIREWORKS_BASE_URL=tls_emu.base_url)
    command = [sys.executable, "-m", "fwprep", "batch", str(manifest), "-a", "acme", "-q"]
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 3, refused.stderr
    assert "did not verify" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    trusted = subprocess.run(
        command, env=dict(env, SSL_CERT_FILE=str(ca[0])), capture_output=True, text=True
    )
    assert trusted.returncode == 0, trusted.stderr
    assert set(tls_emu.stats.prepare_successes) == {
        f"accounts/acme/models/m{i}@FP8" for i in (1, 2)
    }


async def test_https_goes_through_a_connect_tunnel_the_proxy_cannot_read(
    tls_emu: EmulatorThread, ca: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ProxyThread(credentials="ann:s3cret") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://ann:s3cret@127.0.0.1:{proxy.port}")
        await prepare(tls_emu, ca_bundle=ca[0])
    (head,) = proxy.heads
    assert (head.method, head.target) == ("CONNECT", tls_emu.base_url.split("//")[1])
    assert "authorization" not in head.headers  # the key travels inside the tunnel only
    assert not any(tls_emu.api_key in value for value in head.headers.values())
    assert tls_emu.stats.prepare_successes[f"{MODEL}@FP8"] == 1


def test_the_emulators_tls_options_are_checked(
    ca: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "emulator", "--tls-cert", str(ca[1]))
    assert code == 2
    assert "give --tls-cert and --tls-key together" in err
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    code, _, err = run_cli(
        capsys, "emulator", "--port", "0", "--tls-cert", str(junk), "--tls-key", str(ca[2])
    )
    assert code == 2
    assert f"cannot load the TLS certificate {junk} with key {ca[2]}" in err
    assert "Traceback" not in err


# -- what other failures say ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            aiohttp.ClientConnectorError(
                aiohttp.client_reqrep.ConnectionKey(
                    "api.nowhere.invalid", 443, True, True, None, None, None
                ),
                socket.gaierror(-2, "Name or service not known"),
            ),
            "cannot resolve the host api.nowhere.invalid: Name or service not known",
        ),
        (aiohttp.ServerDisconnectedError(), "connection broken: ServerDisconnectedError"),
    ],
)
async def test_network_failures_read_as_one_line(failure: Exception, message: str) -> None:
    with aioresponses() as mocked:
        mocked.post(
            f"https://api.nowhere.invalid/v1/{MODEL}:prepare", exception=failure, repeat=True
        )
        root = "https://api.nowhere.invalid"
        async with FireworksClient("k", base_url=root, retry=RetryPolicy(max_attempts=2)) as c:
            outcome = await c.prepare(c.item((MODEL, "fp8")))
    assert outcome.error is not None
    assert message in str(outcome.error)
    assert "\n" not in str(outcome.error)
    assert outcome.attempts == 2  # transient: retried
