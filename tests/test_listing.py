"""FireworksClient.list_models against a scripted API: pages, tokens, and servers that never end."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support import FakeApi

from fwprep import ConfigError, FireworksClient, InputError, UnexpectedResponseError

KEY = "fw-test-key"
LIST = re.compile(r"/v1/accounts/acme/models\?")


def page(
    names: list[str], token: str | None = None, total: int | str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"models": [{"name": f"accounts/acme/models/{n}"} for n in names]}
    if token is not None:
        body["nextPageToken"] = token
    if total is not None:
        body["totalSize"] = total
    return body


def queries(api: FakeApi) -> list[dict[str, list[str]]]:
    return [
        parse_qs(urlsplit(str(url)).query)
        for (method, url), calls in api.requests.items()
        for _ in calls
        if method == "GET"
    ]


@pytest.fixture
async def client(api: FakeApi) -> AsyncIterator[FireworksClient]:
    async with FireworksClient(KEY, account_id="acme", transport=api) as c:
        yield c


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


async def test_every_page_is_fetched_in_turn_with_every_parameter_repeated(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(LIST, payload=page(["a", "b"], token="t1", total=5))
    api.get(LIST, payload=page(["c", "d"], token="t2", total=5))
    api.get(LIST, payload=page(["e"], token="", total="5"))  # int32 as a JSON string
    listing = client.list_models(filter='kind="HF_PEFT_ADDON"', order_by="name desc")
    names = [m.name.rsplit("/", 1)[1] async for m in listing]
    assert names == ["a", "b", "c", "d", "e"]
    assert (listing.pages, listing.listed, listing.total_size) == (3, 5, 5)
    sent = queries(api)
    assert [q.get("pageToken") for q in sent] == [None, ["t1"], ["t2"]]
    for q in sent:
        assert q["pageSize"] == ["200"]
        assert q["filter"] == ['kind="HF_PEFT_ADDON"']
        assert q["orderBy"] == ["name desc"]


async def test_a_page_is_fetched_only_when_the_previous_one_is_used_up(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(LIST, payload=page(["a", "b"], token="t1"))
    api.get(LIST, payload=page(["c"]))
    listing = client.list_models()
    assert (await anext(listing)).name.endswith("/a")
    assert (await anext(listing)).name.endswith("/b")
    assert listing.pages == 1  # nothing asked beyond what was taken
    assert (await anext(listing)).name.endswith("/c")
    with pytest.raises(StopAsyncIteration):
        await anext(listing)
    assert listing.pages == 2


async def test_a_page_size_above_the_maximum_is_sent_as_200(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(LIST, payload=page([]))
    assert [m async for m in client.list_models(page_size=1000)] == []
    assert queries(api)[0]["pageSize"] == ["200"]


async def test_a_token_sent_twice_ends_the_listing_with_a_clear_error(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(LIST, payload=page(["a"], token="same"))
    api.get(LIST, payload=page(["b"], token="same"), repeat=True)
    listing = client.list_models()
    seen: list[str] = []

    async def take_all() -> None:
        async for model in listing:
            seen.append(model.name)

    with pytest.raises(UnexpectedResponseError) as raised:
        await take_all()
    assert "stopped after 1 models: page 2 named a page token the server had sent before" in str(
        raised.value
    )
    assert seen == ["accounts/acme/models/a"]  # the second page's model is not handed out
    assert listing.pages == 2


async def test_an_empty_page_that_names_a_next_one_ends_the_listing(
    api: FakeApi, client: FireworksClient
) -> None:
    api.get(LIST, payload=page([], token="more"), repeat=True)
    with pytest.raises(UnexpectedResponseError, match="held no model yet named a next page"):
        [m async for m in client.list_models()]


async def test_a_malformed_page_says_which_page(api: FakeApi, client: FireworksClient) -> None:
    api.get(LIST, payload=page(["a"], token="t1"))
    api.get(LIST, payload={"models": {"not": "a list"}})
    with pytest.raises(UnexpectedResponseError, match="page 2 of the models of acme"):
        [m async for m in client.list_models()]


async def test_listing_needs_an_account_and_a_sane_page_size(api: FakeApi) -> None:
    async with FireworksClient(KEY, transport=api) as client:
        with pytest.raises(InputError, match="no account to list"):
            client.list_models()
        with pytest.raises(InputError, match="invalid account id 'Acme'"):
            client.list_models("Acme")
        with pytest.raises(ConfigError, match="page_size must be a whole number >= 1"):
            client.list_models("acme", page_size=0)
    assert api.requests == {}
