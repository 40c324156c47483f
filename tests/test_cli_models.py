"""``fwprep models``: every page of an account, chosen client-side, printed as a table or a manifest."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from support import env_for, final_statuses, fwprep

from fwprep.cli import build_parser
from fwprep.emulator import EmulatorThread
from fwprep.emulator.catalog import demo_catalog, numbered_catalog


@pytest.fixture
def demo() -> Iterator[EmulatorThread]:
    with EmulatorThread(catalog=demo_catalog("acme"), open_catalog=True) as emu:
        yield emu


def rows(stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(stdout)))


def test_every_page_is_listed_and_the_choice_is_made_client_side(tmp_path: Path) -> None:
    catalog = numbered_catalog(450, account_id="acme", prepared_every=3)
    with EmulatorThread(catalog=catalog) as emu:
        result = fwprep("models", "--missing", "fp8", "-o", "csv", env=env_for(emu))
        pages = emu.stats.operations["list_models"]
    assert result.returncode == 0, result.stderr
    listed = rows(result.stdout)
    assert len(listed) == 300  # m0, m3, ... are prepared for FP8 already
    assert {row["model"] for row in listed} == {
        f"accounts/acme/models/m{i}" for i in range(450) if i % 3
    }
    assert pages == 3  # 200 + 200 + 50: one request a page
    assert "300 models of 450 in acme" in result.stderr


def test_kind_state_precision_match_and_limit_choose_together(demo: EmulatorThread) -> None:
    result = fwprep(
        "models",
        "--kind",
        "hf-peft-addon",
        "--kind",
        "Custom_Model",
        "--state",
        "ready",
        "--has",
        "fp16",
        "--match",
        "LLAMA-*",
        "-o",
        "jsonl",
        env=env_for(demo),
    )
    assert result.returncode == 0, result.stderr
    listed = [json.loads(line) for line in result.stdout.splitlines()]
    expected = sorted(
        name
        for name, entry in demo_catalog("acme").items()
        if entry.kind in ("HF_PEFT_ADDON", "CUSTOM_MODEL")
        and entry.state == "READY"
        and "FP16" in entry.supported_precisions
        and name.rsplit("/", 1)[-1].startswith("llama-")
    )
    assert expected  # the demo account has such models
    assert [row["model"] for row in listed] == expected
    assert all(set(row) == {"model", "kind", "state", "supported_precisions"} for row in listed)
    limited = fwprep("models", "--limit", "2", "-o", "csv", env=env_for(demo))
    assert len(rows(limited.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "lora"], "unknown kind 'lora'; known: KIND_UNSPECIFIED, HF_BASE_MODEL"),
        (["--state", "done"], "unknown state 'done'; known: STATE_UNSPECIFIED, UPLOADING, READY"),
        (["--missing", "fp9"], "unknown precision 'fp9'; did you mean FP8 or FP4?"),
    ],
)
def test_a_bad_choice_is_answered_with_the_known_values(
    demo: EmulatorThread, args: list[str], message: str
) -> None:
    result = fwprep("models", *args, env=env_for(demo))
    assert result.returncode == 2
    assert message in result.stderr
    assert demo.stats.operations["list_models"] == 0


def test_the_recipe_prepares_exactly_what_is_missing(demo: EmulatorThread, tmp_path: Path) -> None:
    # fwprep models --missing fp8 -o csv | fwprep batch - -p fp8 --wait
    env = env_for(demo)
    missing = fwprep("models", "--missing", "fp8", "-o", "csv", env=env)
    assert missing.returncode == 0, missing.stderr
    names = {row["model"] for row in rows(missing.stdout)}
    assert 0 < len(names) < len(demo_catalog("acme"))
    batch = subprocess.run(
        [sys.executable, "-m", "fwprep", "batch", "-", "-p", "fp8", "--wait", "-q"],
        input=missing.stdout,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert batch.returncode == 0, batch.stderr
    assert set(demo.stats.prepare_successes) == {f"{name}@FP8" for name in names}
    assert set(final_statuses(tmp_path / "stdin.report.jsonl").values()) == {"ok"}
    again = fwprep("models", "--missing", "fp8", "-o", "csv", env=env)
    assert rows(again.stdout) == []


def test_a_table_on_request(demo: EmulatorThread) -> None:
    result = fwprep("models", "-o", "table", "--match", "qwen2-7b-*", env=env_for(demo))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "kind", "state", "precisions"]
    ids = sorted(n.rsplit("/", 1)[-1] for n in demo_catalog("acme") if "/qwen2-7b-" in n)
    assert [line.split()[0] for line in lines[1:]] == ids


async def test_a_listing_that_fails_part_way_keeps_what_it_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def pages(request: web.Request) -> web.Response:
        if request.query.get("pageToken"):
            return web.json_response({"code": 13, "message": "backend down"}, status=500)
        models = [{"name": f"accounts/acme/models/m{i}", "state": "READY"} for i in range(200)]
        return web.json_response({"models": models, "nextPageToken": "p2", "totalSize": 450})

    app = web.Application()
    app.router.add_get("/v1/accounts/{account}/models", pages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        url = f"http://127.0.0.1:{port}"
        argv = ["models", "-o", "csv", "--retries", "0", "-a", "acme", "--base-url", url]
        args = build_parser().parse_args([*argv, "--api-key", "k"])
        code = await args.handler(args)
    finally:
        await runner.cleanup()
    out, err = capsys.readouterr()
    assert code == 1
    assert len(rows(out)) == 200
    assert "error: the listing failed after 200 models printed" in err
    assert "backend down" in err


def test_no_account_or_a_refused_filter_prints_nothing(demo: EmulatorThread) -> None:
    env = {k: v for k, v in env_for(demo).items() if k != "FIREWORKS_ACCOUNT_ID"}
    no_account = fwprep("models", "-o", "csv", env=env)
    assert no_account.returncode == 2
    assert no_account.stdout == ""
    assert "no account to list: pass -a ACCOUNT or set FIREWORKS_ACCOUNT_ID" in no_account.stderr
    # The emulator evaluates no filter: it refuses one rather than ignore it.
    refused = fwprep("models", "-o", "csv", "--filter", 'kind="HF_PEFT_ADDON"', env=env_for(demo))
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "the listing failed after 0 models printed: HTTP 400 INVALID_ARGUMENT" in refused.stderr
    none_chosen = fwprep("models", "-o", "csv", "--match", "zzz-*", env=env_for(demo))
    assert none_chosen.returncode == 0
    assert none_chosen.stdout == "model,kind,state,supported_precisions\n"  # a manifest of none
