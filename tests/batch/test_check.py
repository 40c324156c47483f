"""``--check`` reads state at few requests: the account's list pages, or one read per model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import env_for, fwprep, write_manifest

from fwprep import FireworksClient
from fwprep.batch import iter_batch, run_batch
from fwprep.emulator import Emulator, EmulatorThread
from fwprep.emulator.catalog import CatalogError, numbered_catalog, read_catalog


def pairs(count: int) -> list[tuple[str, str]]:
    return [(f"accounts/acme/models/m{i}", "fp8") for i in range(count)]


async def test_a_small_account_is_listed_once_for_every_check() -> None:
    async with Emulator(catalog=numbered_catalog(300, prepared_every=3)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            summary = await run_batch(items=pairs(300), client=client, check=True)
        operations = dict(emu.stats.operations)
    assert summary.counts["skipped"] == 100  # m0, m3, m6, ... were prepared already
    assert summary.counts["ok"] == 200
    assert operations.get("list_models") == 2  # 300 models: two pages
    assert operations.get("get_model", 0) == 0
    assert summary.reads == 2


async def test_a_few_items_in_a_large_account_are_checked_model_by_model() -> None:
    async with Emulator(catalog=numbered_catalog(100_000, prepared_every=2)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            summary = await run_batch(items=pairs(20), client=client, check=True)
        operations = dict(emu.stats.operations)
    assert summary.counts["skipped"] == 10
    # One page shows 500 to read: cheaper to read the 20 models one by one.
    assert operations["list_models"] == 1
    assert operations["get_model"] <= 20


async def test_a_model_missing_from_the_account_fails_its_check() -> None:
    async with Emulator(catalog=numbered_catalog(5)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            records = [
                r
                async for r in iter_batch(
                    items=[*pairs(2), ("accounts/acme/models/gone", "fp8")],
                    client=client,
                    check=True,
                )
            ]
    by_model = {r.model: r for r in records}
    missing = by_model["accounts/acme/models/gone"]
    assert missing.status == "failed"
    assert missing.error is not None
    assert missing.error.type == "NotFoundError"
    assert by_model["accounts/acme/models/m0"].status == "ok"


def test_the_cli_counts_the_manifest_and_lists_the_account(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "models.csv", 600)
    with EmulatorThread(catalog=numbered_catalog(600, prepared_every=3)) as emu:
        result = fwprep("batch", str(manifest), "--check", "-q", "-o", "json", env=env_for(emu))
        operations = dict(emu.stats.operations)
    summary = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert summary["counts"] == {"ok": 400, "skipped": 200}
    assert operations["list_models"] == 3
    assert operations.get("get_model", 0) == 0


def test_the_emulator_serves_a_catalogue_from_a_count_or_a_file(tmp_path: Path) -> None:
    catalog = tmp_path / "models.jsonl"
    catalog.write_text(
        '{"name": "accounts/acme/models/a", "supportedPrecisions": ["FP8"]}\n'
        "\n"
        '{"name": "accounts/acme/models/b", "state": "READY"}\n'
    )
    entries = read_catalog(catalog)
    assert entries["accounts/acme/models/a"].supported_precisions == ("FP8",)
    assert list(entries) == ["accounts/acme/models/a", "accounts/acme/models/b"]
    assert len(numbered_catalog(7, account_id="x")) == 7


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{not json", "not JSON"),
        ('{"state": "READY"}', "with a name"),
        ('{"name": "accounts/acme/models/Bad_Id"}', "invalid"),
        ('{"name": "accounts/acme/models/a", "supportedPrecisions": "FP8"}', "list of strings"),
    ],
)
def test_a_bad_catalogue_line_is_named_by_path_and_line(
    tmp_path: Path, line: str, why: str
) -> None:
    catalog = tmp_path / "models.jsonl"
    catalog.write_text('{"name": "accounts/acme/models/a"}\n' + line + "\n")
    with pytest.raises(CatalogError, match=rf"models.jsonl:2: .*{why}"):
        read_catalog(catalog)


def test_fwprep_emulator_refuses_a_bad_catalogue_with_a_message(tmp_path: Path) -> None:
    with EmulatorThread() as emu:
        result = fwprep("emulator", "--models", str(tmp_path / "none.jsonl"), env=env_for(emu))
    assert result.returncode == 2
    assert "none.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
