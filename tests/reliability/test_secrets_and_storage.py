"""The API key never leaks; storage trouble stops a run cleanly without claiming lost work."""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import env_for, fwprep, write_manifest

from fwprep import ConfigError, FireworksClient, FwprepError, RetryPolicy
from fwprep.batch import read_report, run_batch
from fwprep.emulator import Emulator, EmulatorThread, Faults

KEY = "fw-SECRET-7c1d2e9f4a6b8d0e"


def leaks(text: str) -> bool:
    return KEY in text or KEY[3:] in text


@pytest.mark.parametrize("scenario", ["success", "401", "500", "transport"])
def test_the_key_appears_nowhere_in_any_command(
    tmp_path: Path, scenario: str, figures: dict[str, Any], contract: Any
) -> None:
    settings: dict[str, Any] = {"api_keys": (KEY,), "record_requests": True}
    if scenario == "401":
        settings["api_keys"] = ("another-key",)
    if scenario == "500":
        settings["faults"] = Faults(error_500=1.0)
    manifest = write_manifest(tmp_path / "m.csv", 5)
    outputs: list[str] = []
    with EmulatorThread(**settings) as emu:
        env = env_for(emu, key=KEY)
        if scenario == "transport":
            env["FIREWORKS_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens there
        commands = [
            ["batch", str(manifest), "-v", "--retries", "1"],
            ["batch", str(manifest), "-v", "--retries", "1", "-o", "json", "--check"],
            ["batch", str(manifest), "-v", "--retries", "1", "--wait", "--poll-interval", "0.01"],
            [
                "prepare",
                "m0",
                "-p",
                "fp8",
                "-v",
                "--retries",
                "1",
                "--wait",
                "--poll-interval",
                "0.01",
            ],
            ["prepare", "m0", "-p", "fp8", "-v", "--retries", "1", "-o", "json"],
            ["prepare", "m0", "-p", "fp8", "--dry-run", "-v"],
            ["report", f"{manifest}.report.jsonl"],
        ]
        for command in commands:
            result = fwprep(*command, env=env)
            outputs += [result.stdout, result.stderr]
            assert "Traceback" not in result.stderr
        # The same again with the key on the command line rather than in the environment.
        result = fwprep("prepare", "m1", "-p", "fp8", "-v", "--api-key", KEY, env=env)
        outputs += [result.stdout, result.stderr]
        received = list(emu.stats.received)
    outputs.append(Path(f"{manifest}.report.jsonl").read_text())
    assert any("POST /v1/accounts/acme/models/" in text for text in outputs)
    assert not any(leaks(text) for text in outputs)
    contract.check(received)
    figures[f"secrets ({scenario})"] = (
        f"{len(commands) + 1} command runs at DEBUG: key found 0 times"
    )


async def test_the_key_is_in_no_log_record_or_exception(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with Emulator(api_keys=("other",), faults=Faults()) as emu:
        for base in (emu.base_url, "http://127.0.0.1:9"):
            async with FireworksClient(KEY, base_url=base, retry=RetryPolicy(max_attempts=2)) as c:
                seen += [repr(c), str(c)]
                for call in (
                    c.prepare_model("accounts/a/models/m", "fp8"),
                    c.get_model("accounts/a/models/m"),
                ):
                    try:
                        await call
                    except FwprepError as exc:
                        seen += [repr(exc), str(exc), repr(exc.args)]
                summary = await run_batch(
                    items=[("accounts/a/models/m", "fp8")], client=c, report=tmp_path / "r.jsonl"
                )
                seen += [*summary.lines(), json.dumps(summary.to_json())]
    seen += [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    seen.append((tmp_path / "r.jsonl").read_text())
    assert any("-> 401" in text for text in seen)
    assert not any(leaks(text) for text in seen)


@pytest.mark.parametrize(
    "url", ["http://api.fireworks.ai", "http://10.0.0.8:8080", "http://example.com"]
)
def test_plain_http_to_another_host_is_refused_before_connecting(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refusing to send the API key over plain http://"):
        FireworksClient(KEY, base_url=url)
    manifest = write_manifest(tmp_path / "m.csv", 2)
    result = subprocess.run(
        [sys.executable, "-m", "fwprep", "batch", str(manifest), "--base-url", url, "-a", "acme"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FIREWORKS_API_KEY": KEY, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "refusing to send the API key over plain http://" in result.stderr
    assert not leaks(result.stderr + result.stdout)


def test_an_unwritable_report_is_exit_2_before_any_request(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 5)
    with EmulatorThread() as emu:
        result = fwprep(
            "batch", str(manifest), "--report", str(manifest / "r.jsonl"), env=env_for(emu)
        )
        requests = emu.stats.requests
    assert result.returncode == 2
    assert "cannot write the report" in result.stderr
    assert requests == 0


def test_a_file_size_limit_mid_run_stops_cleanly_and_claims_only_what_is_written(
    tmp_path: Path, figures: dict[str, Any]
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 2000)
    report = tmp_path / "r.jsonl"
    limit = 64 * 1024  # bytes: the report reaches it a few hundred items in

    def cap_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with EmulatorThread() as emu:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fwprep",
                "batch",
                str(manifest),
                "--report",
                str(report),
                "-o",
                "json",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env_for(emu),
            preexec_fn=cap_file_size,
        )
    assert "Traceback" not in result.stderr
    assert result.returncode == 3
    summary = json.loads(result.stdout)
    assert "File too large" in summary["halted"]
    contents = read_report([report])  # the write that failed may have left a torn last line
    written_ok = {k for k, r in contents.last.items() if r.status == "ok"}
    assert contents.bad_lines == []
    assert summary["counts"].get("ok", 0) == len(written_ok)
    assert report.stat().st_size <= limit
    figures["storage"] = (
        f"report capped at {limit} bytes: run halted after {len(written_ok)} ok items, "
        f"exactly those claimed ok; exit {result.returncode}"
    )
