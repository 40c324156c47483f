"""Throttling slows a job down and never fails it: whole bulk jobs on simulated accounts.

Each test runs real clients on virtual time (``simulated.py``) against one
account's limit (a token bucket, a fixed or a sliding minute), so minutes of a
10 requests/minute account take a fraction of a second and every run is the
same. The tests state rules; how close to the best each shape allows a job
comes is measured by ``benchmarks/limiter_sweep.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import pytest
from simulated import Account, LoopClock, bulk_job, run_virtual

from fwprep import AdaptiveRateLimiter, FireworksClient, Request, Response, RetryPolicy
from fwprep.emulator.budget import LimitShape

SHAPES: list[tuple[LimitShape, float | None]] = [
    ("bucket", 1.0),
    ("bucket", 5.0),
    ("bucket", None),
    ("window", None),
    ("sliding", None),
]


@pytest.mark.parametrize("retry_after", ["none", "seconds", "exact", "ms", "fixed:1", "fixed:6"])
@pytest.mark.parametrize(("shape", "depth"), SHAPES)
@pytest.mark.parametrize("rpm", [10, 600])
def test_no_item_fails_for_throttling_whatever_the_limits_shape(
    rpm: int, shape: LimitShape, depth: float | None, retry_after: str
) -> None:
    # How long each shape takes is the sweep's to measure
    # (benchmarks/limiter_sweep.py); here, that every item gets through.
    account = Account(rpm=rpm, shape=shape, depth=depth, retry_after=retry_after, jitter=0.5)
    items = 12 if rpm == 10 else 150
    run = run_virtual(bulk_job(account, items=items, retry=RetryPolicy(max_attempts=1)))
    assert (run.ok, run.failed) == (items, 0)


def test_a_thin_account_is_paced_not_stormed() -> None:
    account = Account(rpm=10)
    run = run_virtual(bulk_job(account, items=20))
    assert (run.ok, run.failed) == (20, 0)
    # 16 slots, yet about one request in flight: the pace is what limits.
    assert account.max_in_flight <= 2


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
@pytest.mark.parametrize("clients", [4, 8])
def test_a_crowded_account_fails_nothing(clients: int, retry_after: bool) -> None:
    account = Account(rpm=1200, retry_after=retry_after, jitter=0.5)
    run = run_virtual(bulk_job(account, items=600, clients=clients, stagger=0.03, by_hash=True))
    assert (run.failed, run.ok) == (0, 600)


def test_the_shards_of_a_thin_account_fail_nothing() -> None:
    account = Account(rpm=10)
    run = run_virtual(bulk_job(account, items=20, clients=4, stagger=0.03, by_hash=True))
    assert (run.failed, run.ok) == (0, 20)


def test_429s_never_use_up_the_attempts() -> None:
    account = Account(rpm=10)
    run = run_virtual(bulk_job(account, items=6, retry=RetryPolicy(max_attempts=1)))
    assert (run.ok, run.failed) == (6, 0)
    assert run.throttled > 0


def _refusing_third(sent: list[tuple[float, str]], retry_after: str) -> Any:
    """A server that answers the third request with a 429 naming ``retry_after``."""

    async def server(request: Request) -> Response:
        now = asyncio.get_running_loop().time()
        sent.append((now, request.path))
        if len(sent) == 3:
            return Response(429, {"Retry-After": retry_after}, b'{"code": 8, "message": "slow"}')
        return Response(200, {}, b"{}")

    return server


def test_a_stray_429_delays_no_other_request_and_its_own_until_its_retry_after() -> None:
    sent: list[tuple[float, str]] = []

    async def main() -> None:
        limiter = AdaptiveRateLimiter(initial_rate=10.0, clock=LoopClock())
        async with FireworksClient(
            "key", transport=_refusing_third(sent, "5"), clock=LoopClock(), limiter=limiter
        ) as client:
            items = [(f"accounts/a/models/m{i}", "fp8") for i in range(8)]
            outcomes = [o async for o in client.prepare_many(items)]
        assert all(o.ok for o in outcomes)

    run_virtual(main())
    refused_at, refused_path = sent[2]
    others = [t for t, path in sent[3:] if path != refused_path]
    assert others
    assert max(others) < refused_at + 1.0  # the other items went on
    again = [t for t, path in sent[3:] if path == refused_path]
    assert again == [pytest.approx(refused_at + 5.0)]  # the refused one: at its Retry-After


def _refusing_firsts(sent: list[tuple[float, str]], refused: set[str], in_flight: list[int]) -> Any:
    """A server that refuses the first request for each path in ``refused`` (Retry-After: 10)."""
    seen: set[str] = set()

    async def server(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        sent.append((loop.time(), request.path))
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(0.05)
        in_flight[0] -= 1
        if request.path in refused and request.path not in seen:
            seen.add(request.path)
            return Response(429, {"Retry-After": "10"}, b'{"code": 8, "message": "slow"}')
        return Response(200, {}, b"{}")

    return server


@pytest.mark.parametrize("concurrency", [1, 2])
def test_an_item_waiting_out_its_retry_after_lends_its_place(concurrency: int) -> None:
    # The first `concurrency` items are refused for 10 s: the next items go
    # meanwhile, still no more than `concurrency` requests at once.
    sent: list[tuple[float, str]] = []
    in_flight = [0, 0]
    names = [f"accounts/a/models/m{i}" for i in range(6)]
    refused = {f"/v1/{name}:prepare" for name in names[:concurrency]}

    async def main() -> None:
        async with FireworksClient(
            "key",
            transport=_refusing_firsts(sent, refused, in_flight),
            clock=LoopClock(),
            limiter=AdaptiveRateLimiter(initial_rate=100.0, clock=LoopClock()),
        ) as client:
            outcomes = [
                o
                async for o in client.prepare_many(
                    [(name, "fp8") for name in names], concurrency=concurrency
                )
            ]
        assert all(o.ok for o in outcomes)

    run_virtual(main())
    firsts = [t for t, path in sent if path not in refused]
    assert max(firsts) < 10.0  # not after the refused items' wait
    again = [t for t, path in sent[concurrency:] if path in refused]
    assert again == [pytest.approx(10.05, abs=0.02)] * concurrency  # each at its Retry-After
    assert in_flight[1] <= concurrency


def test_closing_prepare_many_while_items_lend_their_places_leaves_nothing_running() -> None:
    sent: list[tuple[float, str]] = []
    names = [f"accounts/a/models/m{i}" for i in range(40)]
    refused = {f"/v1/{name}:prepare" for name in names[:30]}

    async def main() -> tuple[int, float]:
        async with FireworksClient(
            "key",
            transport=_refusing_firsts(sent, refused, [0, 0]),
            clock=LoopClock(),
            limiter=AdaptiveRateLimiter(initial_rate=100.0, clock=LoopClock()),
        ) as client:
            items = [(name, "fp8") for name in names]
            async with contextlib.aclosing(client.prepare_many(items, concurrency=4)) as outcomes:
                async for outcome in outcomes:
                    assert outcome.ok
                    break
            closed = asyncio.get_running_loop().time()
            await asyncio.sleep(60)  # long enough for any refused item left over to retry
        return len(asyncio.all_tasks()) - 1, closed  # the tasks but this one

    left, closed = run_virtual(main())
    assert left == 0
    assert len(sent) > 8  # items lent their places: more than 4 items were started
    assert max(t for t, _ in sent) <= closed  # and none was sent after the close


def test_a_fixed_rates_retry_after_pauses_every_request_of_the_account() -> None:
    sent: list[tuple[float, str]] = []

    async def main() -> None:
        async with FireworksClient(
            "key", transport=_refusing_third(sent, "5"), clock=LoopClock(), max_rps=10
        ) as client:
            items = [(f"accounts/a/models/m{i}", "fp8") for i in range(8)]
            outcomes = [o async for o in client.prepare_many(items)]
        assert all(o.ok for o in outcomes)

    run_virtual(main())
    times = [t for t, _ in sent]
    assert times[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert times[3] == pytest.approx(5.2)  # nothing at all during the pause
    gaps = [b - a for a, b in itertools.pairwise(times[3:])]
    assert gaps == pytest.approx([0.1] * 5)  # then the rate again, not a burst
    assert len(times) == 9


# -- one budget per account ------------------------------------------------------------------------


def _two_accounts(
    b_answer: Response, max_rps: float | None = None
) -> tuple[FireworksClient, asyncio.Event]:
    """A client whose account ``b`` always answers ``b_answer`` and account ``a`` answers 200.

    The event is set once the first answer is given.
    """
    answered = asyncio.Event()

    async def send(request: Request) -> Response:
        await asyncio.sleep(0.05)
        answered.set()
        return b_answer if request.account == "b" else Response(200, {}, b"{}")

    client = FireworksClient(
        "key", transport=send, clock=LoopClock(), max_concurrency=1, max_rps=max_rps
    )
    return client, answered


def test_one_accounts_429s_do_not_slow_anothers_requests() -> None:
    refused = Response(429, {"Retry-After": "30"}, b'{"code": 8, "message": "slow down"}')
    client, answered = _two_accounts(refused)

    async def main() -> float:
        async with client:
            b = asyncio.ensure_future(client.prepare_model("accounts/b/models/m", "fp8"))
            await answered.wait()  # b's first 429 has paused b's limiter for 30 s
            await client.prepare_model("accounts/a/models/m", "fp8")
            done = asyncio.get_running_loop().time()
            b.cancel()
            return done

    assert run_virtual(main()) < 0.5  # not 30 s: a's pace knows nothing of b's pause
    assert client.limiter_for("a") is not client.limiter_for("b")


def test_waiting_for_one_accounts_pace_holds_no_slot() -> None:
    client, _ = _two_accounts(Response(200, {}, b"{}"), max_rps=1 / 60)  # each account

    async def main() -> float:
        async with client:  # one slot: b's second request waits a minute for its turn
            await client.prepare_model("accounts/b/models/m1", "fp8")
            b = asyncio.ensure_future(client.prepare_model("accounts/b/models/m2", "fp8"))
            await asyncio.sleep(0.01)
            await client.prepare_model("accounts/a/models/m", "fp8")
            done = asyncio.get_running_loop().time()
            await b
            return done

    assert run_virtual(main()) < 1.0


def test_a_limiter_given_paces_every_account() -> None:
    shared = AdaptiveRateLimiter()
    client = FireworksClient("key", limiter=shared)
    assert client.limiter_for("a") is client.limiter_for("b") is client.limiter is shared
