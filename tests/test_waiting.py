"""The waiter: many accepted preparations read in rounds, on virtual time.

A scripted account (:class:`Account`) answers get-model and list-models
requests from preparations that finish at set times, so minutes of waiting
take milliseconds and every read can be counted.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from simulated import LoopClock, run_virtual
from support import Unlimited

from fwprep import (
    FireworksClient,
    FixedRateLimiter,
    InputError,
    ModelRef,
    NotFoundError,
    PreparationFailedError,
    PrepareItem,
    Request,
    Response,
    WaitTimeoutError,
)
from fwprep.waiting import Waiter, WaitOutcome


@attrs.define
class Account:
    """Models ``m000000``... of account ``a``; some have a preparation of FP8 under way.

    ``ready[name]`` is when FP8 shows on the model, ``failing`` the models
    whose preparation fails then instead. ``size`` models are listed.
    """

    size: int
    ready: dict[str, float] = attrs.field(factory=dict)
    failing: set[str] = attrs.field(factory=set)
    list_status: int = 200
    calls: Counter[str] = attrs.field(factory=Counter)

    def name(self, index: int) -> str:
        return f"accounts/a/models/m{index:06d}"

    def model(self, name: str, now: float) -> dict[str, Any]:
        ready = self.ready.get(name)
        body: dict[str, Any] = {"name": name, "state": "READY", "supportedPrecisions": []}
        if ready is not None and now >= ready:
            if name in self.failing:
                body["status"] = {"code": "INTERNAL", "message": "out of disk"}
            else:
                body["supportedPrecisions"] = ["FP8"]
        return body

    async def __call__(self, request: Request) -> Response:
        now = asyncio.get_running_loop().time()
        await asyncio.sleep(0.05)
        url = urlsplit(request.url)
        if url.path.endswith("/models"):
            self.calls["list"] += 1
            if self.list_status != 200:
                return Response(self.list_status, {}, b'{"code": 3, "message": "no listing"}')
            query = parse_qs(url.query)
            start = int(query.get("pageToken", ["0"])[0])
            size = int(query["pageSize"][0])
            names = [self.name(i) for i in range(start, min(start + size, self.size))]
            page: dict[str, Any] = {
                "models": [self.model(n, now) for n in names],
                "totalSize": self.size,
            }
            if start + size < self.size:
                page["nextPageToken"] = str(start + size)
            return Response(200, {}, json.dumps(page).encode())
        self.calls["get"] += 1
        name = url.path.removeprefix("/v1/")
        if int(name.rsplit("m", 1)[1]) >= self.size:
            return Response(404, {}, b'{"code": 5, "message": "model not found"}')
        return Response(200, {}, json.dumps(self.model(name, now)).encode())


def item(account: Account, index: int) -> PrepareItem:
    return PrepareItem(ModelRef.parse(account.name(index)), "fp8")


def client_for(account: Account, limiter: Any = None) -> FireworksClient:
    return FireworksClient(
        "key",
        account_id="a",
        transport=account,
        clock=LoopClock(),
        limiter=limiter or Unlimited(),
    )


async def wait_on(
    account: Account, indices: list[int], *, timeout: float = 3600.0, **options: Any
) -> tuple[list[WaitOutcome], Waiter]:
    async with client_for(account) as client:
        waiter = Waiter(client, timeout=timeout, poll_interval=5.0, **options)
        for index in indices:
            waiter.add(item(account, index))
        waiter.close()
        return [outcome async for outcome in waiter.outcomes()], waiter


def test_items_end_when_their_precision_shows_read_from_list_pages() -> None:
    rng = random.Random(3)
    account = Account(size=300)
    for i in range(300):
        account.ready[account.name(i)] = rng.uniform(5, 30)
    outcomes, waiter = run_virtual(wait_on(account, list(range(300))))
    assert len(outcomes) == 300
    assert all(o.ok for o in outcomes)
    for outcome in outcomes:
        ready = account.ready[outcome.item.model.name]
        assert ready <= outcome.waited <= ready * 1.5 + 5.0  # read soon after it showed
    assert account.calls["get"] == 0
    # Two pages a sweep, a sweep every few seconds: a few dozen reads for 300 items.
    assert account.calls["list"] == waiter.reads <= 30


def test_a_few_items_in_a_large_account_are_read_model_by_model() -> None:
    account = Account(size=100_000)
    for i in (5, 6, 7):
        account.ready[account.name(i)] = 20.0
    outcomes, _ = run_virtual(wait_on(account, [5, 6, 7]))
    assert all(o.ok for o in outcomes)
    # One page says the account needs 500: the items are cheaper one by one.
    assert account.calls["list"] == 1
    assert 3 <= account.calls["get"] <= 3 * 4


def test_a_long_preparation_is_read_less_and_less_often() -> None:
    account = Account(size=1)
    account.ready[account.name(0)] = 600.0  # ten minutes
    outcomes, waiter = run_virtual(wait_on(account, [0], bulk=False))
    assert outcomes[0].ok
    assert 600.0 <= outcomes[0].waited <= 600.0 + 60.0 * 1.5
    assert waiter.reads <= 18  # every 5 s would be 120


def test_a_failure_in_the_models_status_fails_the_item_with_its_message() -> None:
    account = Account(size=2)
    account.ready = {account.name(0): 10.0, account.name(1): 10.0}
    account.failing = {account.name(1)}
    outcomes, _ = run_virtual(wait_on(account, [0, 1]))
    by_model = {o.item.model.model_id: o for o in outcomes}
    assert by_model["m000000"].ok
    error = by_model["m000001"].error
    assert isinstance(error, PreparationFailedError)
    assert error.code == "INTERNAL"
    assert "out of disk" in str(error)


def test_a_wait_times_out_from_the_items_acceptance() -> None:
    account = Account(size=1)  # never ready
    outcomes, _ = run_virtual(wait_on(account, [0], timeout=100.0))
    assert isinstance(outcomes[0].error, WaitTimeoutError)
    assert outcomes[0].waited == pytest.approx(100.0, abs=0.5)


def test_a_missing_model_fails_its_item_and_no_other() -> None:
    account = Account(size=1)
    account.ready[account.name(0)] = 1.0
    outcomes, _ = run_virtual(wait_on(account, [0, 7], bulk=False))
    by_model = {o.item.model.model_id: o for o in outcomes}
    assert by_model["m000000"].ok
    assert isinstance(by_model["m000007"].error, NotFoundError)


def test_a_listing_that_fails_leaves_the_items_to_single_reads() -> None:
    account = Account(size=10, list_status=400)
    for i in range(10):
        account.ready[account.name(i)] = 8.0
    outcomes, _ = run_virtual(wait_on(account, list(range(10))))
    assert all(o.ok for o in outcomes)
    assert account.calls["get"] >= 10


def test_reads_take_a_bounded_share_of_the_rate_while_prepares_are_sent() -> None:
    account = Account(size=100_000)  # read model by model: one read per due item

    async def main() -> tuple[int, float]:
        clock = LoopClock()
        async with client_for(account, FixedRateLimiter(10.0, clock=clock)) as client:
            waiter = Waiter(client, timeout=3600.0, poll_interval=5.0, sending_share=0.2)
            consumer = asyncio.ensure_future(anext(waiter.outcomes(), None))
            for index in range(200):  # 200 items accepted over 20 s, never ready
                waiter.add(item(account, index))
                await asyncio.sleep(0.1)
            reads = waiter.reads
            elapsed = clock.now()
            waiter.stop()
            await consumer
            return reads, elapsed

    reads, elapsed = run_virtual(main())
    # At most a fifth of 10 requests a second (and one round's worth over).
    assert reads <= 0.2 * 10.0 * elapsed + 20


def test_stopping_leaves_the_items_waiting() -> None:
    account = Account(size=3)

    async def main() -> tuple[list[WaitOutcome], int]:
        async with client_for(account) as client:
            waiter = Waiter(client, timeout=3600.0, poll_interval=5.0)
            for index in range(3):
                waiter.add(item(account, index))
            asyncio.get_running_loop().call_later(30.0, waiter.stop)
            return [o async for o in waiter.outcomes()], waiter.waiting

    outcomes, waiting = run_virtual(main())
    assert outcomes == []
    assert waiting == 3


def test_wait_many_yields_each_outcome_as_it_is_known() -> None:
    account = Account(size=3)
    account.ready = {account.name(0): 30.0, account.name(1): 5.0}
    account.failing = {account.name(2)}
    account.ready[account.name(2)] = 15.0

    async def main() -> list[tuple[str, bool]]:
        async with client_for(account) as client:
            pairs = [(account.name(i), "fp8") for i in range(3)]
            return [(o.item.model.model_id, o.ok) async for o in client.wait_many(pairs)]

    # In the order they became known, not the order given.
    assert run_virtual(main()) == [("m000001", True), ("m000002", False), ("m000000", True)]


def test_wait_many_refuses_an_item_without_a_precision_at_the_call() -> None:
    async def main() -> None:
        async with client_for(Account(size=1)) as client:
            with pytest.raises(InputError, match="no precision"):
                client.wait_many([PrepareItem(ModelRef.parse("accounts/a/models/m000000"))])

    run_virtual(main())
