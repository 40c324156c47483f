"""Throttling slows a job down and never fails it: whole bulk jobs on simulated accounts.

Each test runs real clients on virtual time (``simulated.py``) against one
account's token bucket, so minutes of a 10 requests/minute account take a
fraction of a second and every run is the same.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
from typing import ClassVar

import pytest
from simulated import Account, LoopClock, Run, bulk_job, run_virtual

from fwprep import AdaptiveRateLimiter, FireworksClient, Request, Response, RetryPolicy


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
def test_a_thin_account_fails_nothing_and_sees_no_storm(retry_after: bool) -> None:
    account = Account(rpm=10, retry_after=retry_after)
    run = run_virtual(bulk_job(account, items=20))
    assert (run.ok, run.failed) == (20, 0)
    # 16 slots, yet about one request in flight: the pace is what limits.
    assert account.max_in_flight <= 2
    assert run.throttled <= 30  # an unpaced start draws 15 at once, and ~100 in all
    assert run.ratio <= 1.10
    # Found the account's spacing, of ~20 requests after the first 10 s, with
    # a 429 at most (a step under the spacing). Alone on the account, the
    # client sends nothing before the forming bracket's next step (at the
    # window's rate, half the spacing, two more were refused), and its first
    # test at half the spacing waits for thirty settled requests, as the
    # later ones do (4 and 3 late 429s when it came after five). With
    # Retry-After, the header brackets the spacing within a second from the
    # first 429 (halving a bracket from the start's answers would refuse one
    # probe after another: 7 late 429s here).
    assert run.late_throttled <= 1


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
@pytest.mark.parametrize("rpm", [1200, 6000])
def test_one_process_finds_the_limit_and_keeps_under_it(rpm: int, retry_after: bool) -> None:
    account = Account(rpm=rpm, retry_after=retry_after)
    run = run_virtual(bulk_job(account, items=rpm // 2))
    assert (run.failed, run.ok) == (0, rpm // 2)
    assert run.ratio <= 1.10
    # 5%-6%: a step up that brings 429s back goes back (held there, the
    # rate sat just above the limit: 9% at 1,200 a minute).
    assert run.late_429_share < 0.07


@pytest.mark.parametrize("seed", range(3))
def test_one_process_at_a_request_a_second_keeps_to_the_spacing_retry_after_names(
    seed: int,
) -> None:
    # 60 a minute, a bucket one token deep, and 429s with whole-second
    # Retry-After: each names a wait of 1 s whatever it was (a few
    # hundredths, when a request went a little early). Less its grain of a
    # second, counted from the answer rather than from the request, it put
    # the spacing's lower bound a round trip past the real 1 s: accepted
    # requests left 1.07 s apart in two of these three timings.
    account = Account(rpm=60, retry_after=True, seed=seed)
    run = run_virtual(bulk_job(account, items=120))
    assert (run.failed, run.ok) == (0, 120)
    accepted = [t for t, status in account.log if status == 200 and t > 20.0]
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    assert statistics.median(gaps) <= 1.03


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
def test_one_process_at_a_request_a_second_keeps_its_spacing_through_the_networks_jitter(
    retry_after: bool,
) -> None:
    # 60 a minute, and answers whose latency varies by 40% either way: now
    # and then a request is accepted a few milliseconds under the 1 s
    # spacing, its neighbour having been late on the wire. That made the
    # pace a fast one (under one request a second), steered by windows,
    # each request at a random point of its slot: a third of them refused,
    # and 1.34x to 1.45x the ideal in three of these twenty timings.
    runs = [
        run_virtual(
            bulk_job(Account(rpm=60, retry_after=retry_after, jitter=0.4, seed=seed), items=60)
        )
        for seed in range(1, 11)
    ]
    assert all(run.failed == 0 for run in runs)
    assert max(run.ratio for run in runs) <= 1.15  # 1.01x-1.06x, 1.08x-1.11x with Retry-After


@pytest.mark.parametrize(
    ("retry_after", "bound"), [(False, 1.10), (True, 1.30)], ids=["no-retry-after", "retry-after"]
)
def test_one_process_on_a_bucket_one_and_a_half_tokens_deep_paces_evenly(
    retry_after: bool, bound: float
) -> None:
    # 90 a minute: a bucket one and a half tokens deep. Each request at a
    # random point of its slot, one soon after the last found it empty:
    # 1.10x-1.23x the ideal without Retry-After, 1.36x-1.38x with it (each
    # 429 pauses the process a whole second, one and a half requests).
    # Alone on the account, requests leave evenly spaced: 1.06x, and 1.25x
    # (the windows still step above the limit now and then, each 429 a
    # second's pause).
    runs = [
        run_virtual(bulk_job(Account(rpm=90, retry_after=retry_after, seed=seed), items=90))
        for seed in range(5)
    ]
    assert all(run.failed == 0 for run in runs)
    assert max(run.ratio for run in runs) <= bound


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
@pytest.mark.parametrize("clients", [4, 8])
def test_a_crowded_account_fails_nothing(clients: int, retry_after: bool) -> None:
    # The share of 429s is judged over many timings below: in one it ranges
    # from 5% to 11%, by how the shares settle.
    account = Account(rpm=1200, retry_after=retry_after)
    run = run_virtual(bulk_job(account, items=600, clients=clients))
    assert (run.failed, run.ok) == (0, 600)
    assert run.ratio <= 1.20


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
@pytest.mark.parametrize("clients", [4, 8])
def test_a_crowded_account_stays_near_the_ideal_whatever_the_timing(
    clients: int, retry_after: bool
) -> None:
    # Ten runs whose answers arrive with different jitter, the processes
    # starting 0.2 s apart as real ones do: which process wins the next token
    # changes, and no run may leave one process far behind.
    runs = [
        run_virtual(
            bulk_job(
                Account(rpm=1200, retry_after=retry_after, jitter=0.5, seed=seed),
                items=600,
                clients=clients,
                stagger=0.2,
            )
        )
        for seed in range(1, 11)
    ]
    assert all(run.failed == 0 for run in runs)
    # 1.03x-1.10x on average, 1.30x at most: a small share regrows into the
    # room its neighbours leave (growing only 1.5x a window, 1.15x and 1.36x).
    assert statistics.mean(run.ratio for run in runs) <= 1.12
    assert max(run.ratio for run in runs) <= 1.35
    assert statistics.mean(run.late_429_share for run in runs) < 0.10


def shards_split_by_hash(rpm: int, items: int, retry_after: bool, shards: int = 8) -> list[Run]:
    """Shards split as `--shard k/N` splits them, started together, on loopback.

    Ten timings, each with its own split (the model names change with the seed).
    """
    return [
        run_virtual(
            bulk_job(
                Account(rpm=rpm, retry_after=retry_after, jitter=0.0, seed=seed),
                items=items,
                clients=shards,
                stagger=0.03,
                by_hash=True,
            )
        )
        for seed in range(1, 11)
    ]


@pytest.mark.parametrize("retry_after", [False, True], ids=["no-retry-after", "retry-after"])
def test_shards_of_unequal_size_finish_near_the_ideal(retry_after: bool) -> None:
    # Eight shards split by hash, as `--shard k/8` splits 600 items (59 to 89
    # each over these ten splits), started together: the largest finish last,
    # and must take up the room the others leave. On loopback (no jitter).
    runs = shards_split_by_hash(rpm=1200, items=600, retry_after=retry_after)
    assert all(run.failed == 0 for run in runs)
    # 1.06x/1.08x on average, at most 1.17x (growing 1.5x a window at most,
    # 1.11x without Retry-After, and up to 1.21x).
    assert statistics.mean(run.ratio for run in runs) <= 1.10
    assert max(run.ratio for run in runs) <= 1.20
    # About a tenth of the requests after the first 10 s are refused
    # without Retry-After (10.4%), 7.6% with it.
    assert statistics.mean(run.late_429_share for run in runs) < 0.11


@pytest.mark.parametrize(("shards", "mean", "worst"), [(4, 1.15, 1.25), (8, 1.10, 1.20)])
def test_the_last_shard_of_a_thin_account_keeps_near_its_pace(
    shards: int, mean: float, worst: float
) -> None:
    # 20 items on a 10 requests/minute account, split by hash (1 to 11 items
    # a shard of 4, 0 to 8 of 8): the crowd gives up on finding a spacing,
    # and 15 s later looks for one afresh, keeping a slow pace exactly while
    # it does, so the shard left last, its neighbours done, keeps its pace
    # (the floor's 6.7 s is accepted). Given up for good, its requests left
    # at random points of their slots, some early and refused, others late:
    # 4 shards took 1.22x on average over these timings, up to 1.35x; 8
    # took 1.11x, up to 1.17x (1.12x and 1.20x, 1.09x and 1.16x now). At a
    # floor of 7.5 requests a minute, 8 shards took 1.22x.
    runs = shards_split_by_hash(rpm=10, items=20, retry_after=False, shards=shards)
    assert all(run.failed == 0 for run in runs)
    assert statistics.mean(run.ratio for run in runs) <= mean
    assert max(run.ratio for run in runs) <= worst


def test_on_loopback_the_process_paced_near_the_limit_does_not_keep_the_account() -> None:
    # No jitter, as on loopback: each process's requests reach the bucket as
    # evenly as they leave. Paced evenly, the first process at the account's
    # rate asked just after each token appeared and took nearly every one,
    # and the others waited for it to finish (1.32x on average over these
    # timings); each request at a random point of its own slot shares them.
    runs = [
        run_virtual(
            bulk_job(Account(rpm=6000, jitter=0.0, seed=seed), items=3000, clients=4, stagger=0.2)
        )
        for seed in range(6)
    ]
    assert all(run.failed == 0 for run in runs)
    assert statistics.mean(run.ratio for run in runs) <= 1.22


def test_429s_never_use_up_the_attempts() -> None:
    account = Account(rpm=10)
    run = run_virtual(bulk_job(account, items=6, retry=RetryPolicy(max_attempts=1)))
    assert (run.ok, run.failed) == (6, 0)
    assert run.throttled > 0


def test_one_retry_after_pauses_every_request_of_the_client() -> None:
    sent: list[float] = []

    async def server(request: Request) -> Response:
        now = asyncio.get_running_loop().time()
        sent.append(now)
        if len(sent) == 3:
            return Response(429, {"Retry-After": "5"}, b'{"code": 8, "message": "slow down"}')
        return Response(200, {}, b"{}")

    async def main() -> None:
        async with FireworksClient(
            "key", transport=server, clock=LoopClock(), max_rps=10
        ) as client:
            items = [(f"accounts/a/models/m{i}", "fp8") for i in range(8)]
            outcomes = [o async for o in client.prepare_many(items)]
        assert all(o.ok for o in outcomes)

    run_virtual(main())
    assert sent[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert sent[3] == pytest.approx(5.2)  # nothing at all during the pause
    gaps = [b - a for a, b in itertools.pairwise(sent[3:])]
    assert gaps == pytest.approx([0.1] * 5)  # then the rate again, not a burst
    assert len(sent) == 9


class _SpacingWatch(AdaptiveRateLimiter):
    """The default limiter; every instance notes in one list the times it steered by a spacing."""

    steered: ClassVar[list[float]] = []

    def _steer_by_spacing(self) -> None:
        self.steered.append(self._clock.now())
        super()._steer_by_spacing()


@pytest.mark.parametrize("seed", range(6))
def test_shards_of_a_middling_account_are_not_taken_for_a_lone_slow_client(seed: int) -> None:
    # Four processes at 300 requests/minute each get about 1.25 a second, and
    # one cut below one a second sees answers a spacing could explain for a
    # while. The account takes 5 a second, so no spacing over a second is
    # real here: a shard that kept to one would take every token. One taken
    # and given up at the next answer does no harm (a two-answer bracket, or
    # a spacing under a second, steers 14-20 times in these timings).
    _SpacingWatch.steered = []
    run = run_virtual(
        bulk_job(
            Account(rpm=300, jitter=0.5, seed=seed),
            items=200,
            clients=4,
            stagger=0.2,
            limiter_type=_SpacingWatch,
        )
    )
    assert (run.ok, run.failed) == (200, 0)
    assert len(_SpacingWatch.steered) <= 1


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
