"""ListModels end to end: FireworksClient.list_models against the emulator on loopback."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from fwprep import BadRequestError, FireworksClient, NotFoundError
from fwprep.emulator import CatalogEntry, Emulator


def catalog(account: str, count: int) -> dict[str, CatalogEntry]:
    return {
        f"accounts/{account}/models/m{i:04d}": CatalogEntry(
            supported_precisions=("FP8",) if i % 3 == 0 else ()
        )
        for i in range(count)
    }


async def test_every_model_of_the_account_comes_back_once_in_order() -> None:
    models = {**catalog("acme", 450), **catalog("other", 5)}
    async with Emulator(catalog=models) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as client:
            listing = client.list_models()
            listed = [model async for model in listing]
        assert emu.stats.operations == {"list_models": 3}  # 200 + 200 + 50: a request a page
    assert [m.name for m in listed] == sorted(n for n in models if "/acme/" in n)
    assert (listing.pages, listing.total_size) == (3, 450)
    assert [m.has_precision("fp8") for m in listed[:4]] == [True, False, False, True]


async def test_name_desc_lists_backwards_across_pages() -> None:
    async with Emulator(catalog=catalog("acme", 7)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            listed = [
                m.name.rsplit("/", 1)[1]
                async for m in client.list_models("acme", order_by="name desc", page_size=3)
            ]
    assert listed == [f"m{i:04d}" for i in range(6, -1, -1)]


async def test_without_a_catalog_the_models_prepared_so_far_are_listed() -> None:
    async with Emulator() as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as client:
            for model in ("b", "a"):
                await client.prepare_model(model, "fp8")
            listed = [m async for m in client.list_models()]
        assert emu.stats.operations == {"prepare": 2, "list_models": 1}
    assert [m.name for m in listed] == ["accounts/acme/models/a", "accounts/acme/models/b"]
    assert all(m.has_precision("FP8") for m in listed)


async def test_the_server_side_of_the_contract() -> None:
    async with Emulator(catalog=catalog("acme", 120)) as emu, aiohttp.ClientSession() as http:
        url = f"{emu.base_url}/v1/accounts/acme/models"
        auth = {"Authorization": f"Bearer {emu.api_key}"}

        async def get(**query: str) -> tuple[int, dict[str, Any]]:
            async with http.get(url, params=query, headers=auth) as response:
                return response.status, await response.json()

        status, first = await get()  # no pageSize: 50
        assert status == 200
        assert (len(first["models"]), first["totalSize"]) == (50, 120)
        status, big = await get(pageSize="1000")  # coerced to 200: everything, no next page
        assert (status, len(big["models"]), "nextPageToken" in big) == (200, 120, False)
        token = str(first["nextPageToken"])
        status, mismatch = await get(pageToken=token, pageSize="10")
        assert status == 400
        assert "repeat every parameter" in str(mismatch["message"])
        status, bad = await get(pageToken="not-a-token")
        assert (status, bad["code"]) == (400, 3)  # INVALID_ARGUMENT


async def test_a_filter_the_emulator_cannot_evaluate_is_refused_not_ignored() -> None:
    async with Emulator(catalog=catalog("acme", 3)) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            with pytest.raises(BadRequestError, match="does not evaluate filter"):
                [m async for m in client.list_models("acme", filter='kind="HF_PEFT_ADDON"')]


async def test_an_open_catalog_serves_its_models_and_any_other_too() -> None:
    models = {
        "accounts/acme/models/ft-1": CatalogEntry(
            ("FP16",), kind="HF_PEFT_ADDON", state="UPLOADING"
        ),
        "accounts/acme/models/ft-2": CatalogEntry(kind="CUSTOM_MODEL"),
    }
    async with Emulator(catalog=models, open_catalog=True) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as client:
            first = [(m.name, m.kind, m.state) async for m in client.list_models()]
            await client.prepare_model("new-1", "fp8")  # outside the catalog: it exists too
            after = [m.name async for m in client.list_models()]
    assert first == [
        ("accounts/acme/models/ft-1", "HF_PEFT_ADDON", "UPLOADING"),
        ("accounts/acme/models/ft-2", "CUSTOM_MODEL", "READY"),
    ]
    assert after == [
        "accounts/acme/models/ft-1",
        "accounts/acme/models/ft-2",
        "accounts/acme/models/new-1",
    ]


async def test_a_closed_catalog_has_no_other_model() -> None:
    async with Emulator(catalog={"accounts/acme/models/ft-1": CatalogEntry()}) as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as client:
            with pytest.raises(NotFoundError):
                await client.prepare_model("new-1", "fp8")
