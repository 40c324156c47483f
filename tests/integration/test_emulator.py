"""The emulator, driven over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fwprep import FireworksClient, Precision
from fwprep.emulator import CatalogEntry, Emulator, EmulatorThread, Faults

REPO = Path(__file__).resolve().parents[2]
PROJECT_SPEC = REPO / "fwprep" / "emulator" / "openapi.yaml"
SHARED_SPEC = REPO.parent / "shared" / "spec" / "fireworks-control-plane.openapi.yaml"
NAME = "accounts/acme/models/ft-7"


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    """Inline every local $ref, so jsonschema sees one self-contained schema."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _resolve(target, root)
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    return node


SPEC = yaml.safe_load(PROJECT_SPEC.read_text())
BODY_SCHEMA = _resolve(SPEC["components"]["schemas"]["GatewayPrepareModelBody"], SPEC)
ID_PATTERN = re.compile(SPEC["components"]["parameters"]["ModelId"]["schema"]["pattern"])


def contract_allows_body(raw: bytes) -> bool:
    if not raw.strip():
        return False  # requestBody.required
    try:
        body = json.loads(raw)
    except ValueError:
        return False
    try:
        jsonschema.validate(body, BODY_SCHEMA)
    except jsonschema.ValidationError:
        return False
    return True


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as e:
        yield e


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


def auth(e: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {e.api_key}", "Content-Type": "application/json"}


async def post(
    http: aiohttp.ClientSession, e: Emulator, name: str, body: bytes, **kw: Any
) -> tuple[int, bytes, Any]:
    headers = kw.pop("headers", auth(e))
    async with http.post(f"{e.base_url}/v1/{name}:prepare", data=body, headers=headers) as r:
        return r.status, await r.read(), r.headers


async def get(http: aiohttp.ClientSession, e: Emulator, name: str) -> tuple[int, Any]:
    async with http.get(f"{e.base_url}/v1/{name}", headers=auth(e)) as r:
        raw = await r.read()
        return r.status, (json.loads(raw) if raw.startswith(b"{") else raw)


def test_the_project_copy_of_the_contract_matches_the_shared_one() -> None:
    if not SHARED_SPEC.exists():
        pytest.skip(f"no shared contract at {SHARED_SPEC}")
    assert PROJECT_SPEC.read_text() == SHARED_SPEC.read_text()


async def test_a_good_prepare_is_200_with_an_empty_object(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    status, body, headers = await post(http, emu, NAME, b'{"precision": "FP8"}')
    assert (status, json.loads(body)) == (200, {})
    assert headers["Content-Type"].startswith("application/json")
    assert emu.stats.prepare_successes[f"{NAME}@FP8"] == 1


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing Authorization header"),
        ({"Authorization": "Bearer wrong"}, "invalid API key"),
        ({"Authorization": "fw-emulator-key"}, "invalid API key"),
    ],
)
async def test_auth_failures_are_401_unauthenticated(
    emu: Emulator, http: aiohttp.ClientSession, headers: dict[str, str], message: str
) -> None:
    status, body, _ = await post(http, emu, NAME, b"{}", headers=headers)
    assert status == 401
    assert json.loads(body) == {"code": 16, "message": message, "details": []}
    assert emu.stats.prepare_requests[NAME] == 0


async def test_configured_keys_are_the_ones_accepted(http: aiohttp.ClientSession) -> None:
    async with Emulator(api_keys=("k1", "k2")) as e:
        for key, expected in (("k1", 200), ("k2", 200), ("fw-emulator-key", 401)):
            headers = {"Authorization": f"Bearer {key}"}
            status, _, _ = await post(http, e, NAME, b"{}", headers=headers)
            assert status == expected


BODY_CORPUS: list[bytes] = [
    b"{}",
    b'{"precision": "FP8"}',
    b'{"precision": "PRECISION_UNSPECIFIED", "readMask": ""}',
    b'{"readMask": "*"}',
    b'{"precision": "FP4_MX_MOE", "readMask": "name,state"}',
    b"",
    b"   ",
    b"null",
    b"[]",
    b'"FP8"',
    b"{not json",
    b'{"precision": "fp8"}',
    b'{"precision": "FP9"}',
    b'{"precision": 2}',
    b'{"precision": null}',
    b'{"readMask": 5}',
    b'{"readMask": ["name"]}',
    b'{"precision": "FP8", "extra": 1}',
    b'{"Precision": "FP8"}',
    b'{"read_mask": "x"}',
    b"\xff\xfe",
] + [json.dumps({"precision": p.value}).encode() for p in Precision]


@pytest.mark.parametrize("body", BODY_CORPUS)
async def test_body_corpus_accepted_exactly_as_the_contract_says(
    emu: Emulator, http: aiohttp.ClientSession, body: bytes
) -> None:
    status, raw, _ = await post(http, emu, NAME, body)
    if contract_allows_body(body):
        assert status == 200
    else:
        assert status == 400
        error = json.loads(raw)
        assert error["code"] == 3  # INVALID_ARGUMENT
        assert error["message"]


def test_invalid_fields_are_named_in_the_message() -> None:
    async def run() -> list[str]:
        async with Emulator() as e, aiohttp.ClientSession() as s:
            out = []
            for body in (b'{"precision": "FP8", "extra": 1}', b'{"precision": "FP9"}'):
                _, raw, _ = await post(s, e, NAME, body)
                out.append(json.loads(raw)["message"])
            return out

    extra, bad = asyncio.run(run())
    assert "'extra'" in extra
    assert "'precision'" in bad
    assert "'FP9'" in bad


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from([p.value for p in Precision]),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=4,
)
bodies = st.dictionaries(
    st.sampled_from(["precision", "readMask", "other", "PRECISION"]), json_values, max_size=3
).map(lambda d: json.dumps(d).encode()) | st.binary(max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_generated_bodies_accepted_exactly_as_the_contract_says(body: bytes) -> None:
    status = _SHARED.post(body)
    assert (status == 200) == contract_allows_body(body), body


class _SharedServer:
    """One emulator thread for the generated cases, started on first use."""

    def __init__(self) -> None:
        self.thread: EmulatorThread | None = None

    def post(self, body: bytes, name: str = NAME) -> int:
        import urllib.request

        if self.thread is None:
            self.thread = EmulatorThread()
            self.thread.start()
        request = urllib.request.Request(
            f"{self.thread.base_url}/v1/{name}:prepare",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {self.thread.api_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)


_SHARED = _SharedServer()


@pytest.fixture(scope="module", autouse=True)
def _stop_shared() -> Any:
    yield
    if _SHARED.thread is not None:
        _SHARED.thread.stop()


id_text = st.text(alphabet="abz09-AZ_.~", min_size=1, max_size=70) | st.from_regex(
    r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"
)


@settings(max_examples=150, deadline=None)
@given(account=id_text, model=id_text)
def test_ids_accepted_exactly_as_the_contract_pattern_says(account: str, model: str) -> None:
    status = _SHARED.post(b"{}", name=f"accounts/{account}/models/{model}")
    allowed = bool(ID_PATTERN.match(account)) and bool(ID_PATTERN.match(model))
    assert (status == 200) == allowed, (account, model, status)


async def test_catalog_makes_unknown_models_404(http: aiohttp.ClientSession) -> None:
    async with Emulator(catalog={NAME: CatalogEntry()}) as e:
        assert (await post(http, e, NAME, b"{}"))[0] == 200
        status, raw, _ = await post(http, e, "accounts/acme/models/other", b"{}")
        assert status == 404
        assert json.loads(raw)["code"] == 5
        assert (await get(http, e, "accounts/acme/models/other"))[0] == 404


async def test_get_model_returns_the_model_with_unrelated_fields(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    status, model = await get(http, emu, NAME)
    assert status == 200
    assert model["name"] == NAME
    assert model["state"] == "READY"
    assert model["status"]["code"] == "OK"
    assert model["supportedPrecisions"] == []
    assert {"createTime", "contextLength", "baseModelDetails"} <= set(model)


async def test_a_prepared_precision_shows_on_the_model(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    await post(http, emu, NAME, b'{"precision": "FP8"}')
    await post(http, emu, NAME, b'{"precision": "BF16"}')
    await post(http, emu, NAME, b'{"precision": "FP8"}')
    _, model = await get(http, emu, NAME)
    assert model["supportedPrecisions"] == ["FP8", "BF16"]
    assert emu.stats.prepare_requests[f"{NAME}@FP8"] == 2


async def test_preparation_takes_the_configured_delay(http: aiohttp.ClientSession) -> None:
    async with Emulator(prepare_delay=3600) as e:
        await post(http, e, NAME, b'{"precision": "FP8"}')
        _, model = await get(http, e, NAME)
        assert model["supportedPrecisions"] == []  # still preparing an hour from now
    async with Emulator(prepare_delay=0.05) as e:
        await post(http, e, NAME, b'{"precision": "FP8"}')
        async with FireworksClient(e.api_key, base_url=e.base_url) as client:
            done = await client.wait_until_prepared(NAME, "FP8", poll_interval=0.01, timeout=10)
        assert done.supported_precisions == ("FP8",)


async def test_a_catalog_entry_can_fail_preparation(http: aiohttp.ClientSession) -> None:
    catalog = {
        NAME: CatalogEntry(
            supported_precisions=("FP16",), fail_preparation="quantizer ran out of memory"
        )
    }
    async with Emulator(catalog=catalog) as e:
        assert (await post(http, e, NAME, b'{"precision": "FP8"}'))[0] == 200
        _, model = await get(http, e, NAME)
        assert model["status"] == {"code": "INTERNAL", "message": "quantizer ran out of memory"}
        assert model["supportedPrecisions"] == ["FP16"]


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        (
            "google",
            lambda b: (
                json.loads(b)
                == {"code": 5, "message": "model not found: accounts/acme/models/x", "details": []}
            ),
        ),
        ("nested", lambda b: json.loads(b)["error"]["status"] == "NOT_FOUND"),
        (
            "flat",
            lambda b: (
                json.loads(b)
                == {"error": "Not Found", "message": "model not found: accounts/acme/models/x"}
            ),
        ),
        ("html", lambda b: b.startswith(b"<html>") and b"404 Not Found" in b),
        ("empty", lambda b: b == b""),
    ],
)
async def test_error_formats(http: aiohttp.ClientSession, fmt: str, check: Any) -> None:
    async with Emulator(catalog={}, error_format=fmt) as e:
        status, raw, _ = await post(http, e, "accounts/acme/models/x", b"{}")
    assert status == 404
    assert check(raw), raw


async def test_rate_limit_with_and_without_retry_after(http: aiohttp.ClientSession) -> None:
    for send_header in (True, False):
        async with Emulator(rpm=60, burst=2, retry_after=send_header) as e:
            statuses = []
            for _ in range(3):
                status, raw, headers = await post(http, e, NAME, b"{}")
                statuses.append(status)
            assert statuses == [200, 200, 429]
            assert json.loads(raw)["code"] == 8  # RESOURCE_EXHAUSTED
            assert ("Retry-After" in headers) is send_header
            if send_header:
                assert int(headers["Retry-After"]) == 1
            # the limit is per account
            assert (await post(http, e, "accounts/other/models/m", b"{}"))[0] == 200


@pytest.mark.parametrize(
    ("fault", "status", "body_check"),
    [
        ("error_500", 500, lambda b: json.loads(b)["code"] == 13),
        ("error_503", 503, lambda b: json.loads(b)["code"] == 14),
        ("throttle_429", 429, lambda b: json.loads(b)["code"] == 8),
        ("bad_gateway", 502, lambda b: b"<title>502 Bad Gateway</title>" in b),
    ],
)
async def test_status_faults(
    http: aiohttp.ClientSession, fault: str, status: int, body_check: Any
) -> None:
    async with Emulator(faults=Faults(**{fault: 1.0})) as e:
        got, raw, _ = await post(http, e, NAME, b"{}")
        assert got == status
        assert body_check(raw)
        assert e.stats.faults[fault] == 1
        assert e.stats.prepare_successes[NAME] == 0


async def test_reset_fault_drops_the_connection(http: aiohttp.ClientSession) -> None:
    async with Emulator(faults=Faults(reset=1.0)) as e:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(http, e, NAME, b"{}")
        assert e.stats.faults["reset"] == 1
        assert e.stats.statuses[0] == 1


async def test_stall_fault_outlasts_the_client_timeout() -> None:
    # Stopping cuts the stall off: the block ends long before the stall's 60 s.
    async with asyncio.timeout(30), Emulator(faults=Faults(stall=1.0, stall_seconds=60)) as e:
        timeout = aiohttp.ClientTimeout(total=0.2)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            with pytest.raises(asyncio.TimeoutError):
                await post(s, e, NAME, b"{}")
        assert e.stats.faults["stall"] == 1
        assert e.stats.in_flight == 1  # still held by the stall


async def test_latency_is_added(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)  # the emulator waits its latency with it
    async with Emulator(faults=Faults(latency_ms=80)) as e:
        await post(http, e, NAME, b"{}")
    assert pytest.approx(0.08) in waits  # the request waited the latency before its answer


async def test_a_seed_makes_faults_reproducible(http: aiohttp.ClientSession) -> None:
    faults = Faults(error_500=0.2, error_503=0.2, throttle_429=0.2)
    runs = []
    for seed in (7, 7, 8):
        async with Emulator(faults=faults, seed=seed) as e:
            runs.append([(await post(http, e, NAME, b"{}"))[0] for _ in range(40)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {200, 500, 503, 429} == set(runs[0])


def test_fault_probabilities_must_not_exceed_one() -> None:
    with pytest.raises(ValueError, match=r"add up to 1\.2"):
        Faults(error_500=0.6, error_503=0.6)


async def test_stats_over_http_match_the_stats_in_process(
    http: aiohttp.ClientSession,
) -> None:
    async with Emulator(faults=Faults(latency_ms=30)) as e:
        await asyncio.gather(*(post(http, e, NAME, b'{"precision": "FP8"}') for _ in range(5)))
        await post(http, e, NAME, b'{"precision": "nope"}')
        async with http.get(f"{e.base_url}/_emulator/stats") as r:
            stats = await r.json()
    assert stats == e.stats.to_json()
    assert stats["requests"] == 6
    assert stats["prepare_requests"] == {f"{NAME}@FP8": 5}
    assert stats["prepare_successes"] == {f"{NAME}@FP8": 5}
    assert stats["statuses"] == {"200": 5, "400": 1}
    assert stats["max_in_flight"] == 5
    assert stats["in_flight"] == 0


def test_emulator_thread_serves_synchronous_code() -> None:
    import urllib.request

    with EmulatorThread() as e:
        request = urllib.request.Request(
            f"{e.base_url}/v1/{NAME}:prepare",
            data=b"{}",
            method="POST",
            headers={"Authorization": f"Bearer {e.api_key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        assert e.stats.prepare_successes[NAME] == 1


def test_pytest_plugin_gives_downstream_projects_a_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio, os, pytest
        import fwprep

        def test_env_points_at_the_emulator(fireworks_emulator):
            assert os.environ["FIREWORKS_BASE_URL"] == fireworks_emulator.base_url

            async def main():
                async with fwprep.FireworksClient() as client:
                    await client.prepare_model("m", "fp8")

            asyncio.run(main())
            key = "accounts/test-account/models/m@FP8"
            assert fireworks_emulator.stats.prepare_successes[key] == 1

        @pytest.mark.fireworks_emulator(catalog={})
        def test_settings_come_from_the_mark(fireworks_emulator):
            async def main():
                async with fwprep.FireworksClient() as client:
                    await client.prepare_model("m", "fp8")

            with pytest.raises(fwprep.NotFoundError):
                asyncio.run(main())
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_the_fixture_keeps_a_proxy_in_the_environment_off_the_emulator(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy nobody answers on
    monkeypatch.setenv("no_proxy", "internal.example")
    pytester.makepyfile(
        """
        import asyncio, os
        import fwprep

        def test_straight_to_the_emulator(fireworks_emulator):
            assert os.environ["no_proxy"] == "internal.example,127.0.0.1,localhost"

            async def main():
                async with fwprep.FireworksClient() as client:
                    await client.prepare_model("m", "fp8")

            asyncio.run(main())
            assert fireworks_emulator.stats.prepare_successes
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ignored_at_start", "sig"),
    [(False, signal.SIGINT), (True, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["SIGINT", "SIGINT-ignored-at-start", "SIGTERM"],
)
def test_the_emulator_command_serves_until_interrupted(
    ignored_at_start: bool, sig: signal.Signals
) -> None:
    import urllib.request

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "fwprep", "emulator", "--port", "0", "--api-key", "k-cli"]
    if ignored_at_start:
        # What a shell does to a command it starts in the background (`fwprep emulator &`).
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            second = proc.stdout.readline()
            match = re.search(r"serving on (http://127\.0\.0\.1:\d+)", first)
            assert match, first
            assert "FIREWORKS_API_KEY=k-cli" in second
            request = urllib.request.Request(
                f"{match.group(1)}/v1/{NAME}:prepare",
                data=b"{}",
                method="POST",
                headers={"Authorization": "Bearer k-cli"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in stderr
    assert "emulator stopped" in stderr
