"""Simulated accounts: several clients against one rate limit, on virtual time.

An event loop whose clock jumps to the next timer whenever nothing is ready
(:class:`VirtualTimeLoop`) runs real :class:`~fwprep.FireworksClient`
instances against an in-memory account (:class:`Account`): a token bucket
shared by every client, an answer latency, and 429s with or without
``Retry-After``. Ten minutes of a 10 requests/minute account take a fraction
of a second, and the outcome is the same on every run.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

import attrs

from fwprep import AdaptiveRateLimiter, FireworksClient, Request, Response
from fwprep.batch.admit import Shard
from fwprep.emulator.budget import Budget, LimitShape, RetryAfter

T = TypeVar("T")


def _retry_after(value: RetryAfter | str | bool | None) -> RetryAfter:
    return RetryAfter.parse(value)


class _JumpingSelector(selectors.DefaultSelector):
    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[Any]:
        events: list[Any] = super().select(0)
        if events or timeout is None or timeout <= 0:
            return events
        self.loop.virtual_now += timeout  # nothing to do until the next timer: jump to it
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time: idle waits take no real time.

    Only for code that does no real I/O (a scripted transport): a socket
    read would see time jump past its timeout.
    """

    def __init__(self) -> None:
        self.virtual_now = 0.0
        selector = _JumpingSelector()
        selector.loop = self
        super().__init__(selector)

    def time(self) -> float:
        return self.virtual_now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to the end on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


class LoopClock:
    """A :class:`fwprep.Clock` reading the running loop's (virtual) time."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


@attrs.define
class Account:
    """One account's request budget, every client drawing on it (:mod:`fwprep.emulator.budget`).

    Attributes:
        rpm: the limit in requests a minute.
        retry_after: what 429s say (a :class:`RetryAfter` or its text:
            ``none``, ``seconds``, ``exact``, ``ms``, ``fixed:N``; ``True`` is
            ``seconds``, as the emulator sends it).
        depth: the bucket's depth; default one second's worth (at least 1).
        shape: ``bucket``, ``window`` (a calendar minute, the first one
            ``phase`` seconds gone at the start) or ``sliding``.
        count_refused: refused requests spend the budget too.
        latency: seconds from a request to its answer.
        jitter: each answer's latency varies by up to this share of
            ``latency`` either way, drawn from a generator seeded with
            ``seed`` (so a run is still the same every time).
        stray_429: the share of requests refused whatever the budget says,
            with ``Retry-After: 1`` (a proxy, a server's hiccup), spending none.
        error_503: the share of requests answered 503, spending none.
    """

    rpm: float
    retry_after: RetryAfter = attrs.field(default=RetryAfter(), converter=_retry_after)
    depth: float | None = None
    latency: float = 0.05
    jitter: float = 0.0
    seed: int = 0
    shape: LimitShape = "bucket"
    count_refused: bool = False
    phase: float = 0.0
    stray_429: float = 0.0
    error_503: float = 0.0
    budget: Budget = attrs.field(init=False)
    _random: random.Random = attrs.field(init=False)
    answers: Counter[tuple[int, int]] = attrs.field(factory=Counter)
    log: list[tuple[float, int]] = attrs.field(factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __attrs_post_init__(self) -> None:
        self.budget = Budget(
            self.rpm,
            self.shape,
            burst=self.depth,
            count_refused=self.count_refused,
            phase=self.phase,
        )
        self.depth = self.budget.depth
        self._random = random.Random(self.seed)

    def _half_latency(self) -> float:
        return self.latency / 2 * (1 + self.jitter * self._random.uniform(-1, 1))

    def transport(self, client_id: int) -> Any:
        """The transport of client number ``client_id``: every answer is counted per client."""

        async def send(request: Request) -> Response:
            loop = asyncio.get_running_loop()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(self._half_latency())
            fault = self._random.random() if self.stray_429 or self.error_503 else 1.0
            stray = fault < self.stray_429
            error = not stray and fault < self.stray_429 + self.error_503
            wait = 1.0 if stray else 0.0 if error else self.budget.take(loop.time())
            await asyncio.sleep(self._half_latency())
            self.in_flight -= 1
            status = 503 if error else 200 if wait == 0 else 429
            self.answers[client_id, status] += 1
            self.log.append((loop.time(), status))
            if status == 200:
                return Response(200, {}, b"{}")
            if status == 503:
                return Response(503, {}, b'{"code": 14, "message": "unavailable"}')
            headers = {"Retry-After": "1"} if stray else self.retry_after.headers(wait)
            return Response(429, headers, b'{"code": 8, "message": "rate limit exceeded"}')

        return send

    def count(self, status: int) -> int:
        """Answers with ``status``, all clients together."""
        return sum(n for (_, s), n in self.answers.items() if s == status)


@attrs.frozen
class Run:
    """What one simulated bulk job did."""

    wall: float
    ideal: float
    ok: int
    failed: int
    throttled: int
    late_throttled: int
    requests: int
    per_client_ok: tuple[int, ...]

    @property
    def ratio(self) -> float:
        """Wall time over the ideal (items / limit)."""
        return self.wall / self.ideal

    @property
    def late_429_share(self) -> float:
        """The share of 429s among requests after the first 10 s (the limiter's start)."""
        return self.late_throttled / max(1, self.requests)


async def bulk_job(
    account: Account,
    items: int,
    clients: int = 1,
    stagger: float = 0.0,
    limiter_type: type[AdaptiveRateLimiter] = AdaptiveRateLimiter,
    by_hash: bool = False,
    shared: bool | None = None,
    **client_options: Any,
) -> Run:
    """Prepare ``items`` models split over ``clients`` clients (one a process) on ``account``.

    Client ``k`` starts ``k * stagger`` seconds after the first, as processes
    launched together do when each takes its time to start. Each client has
    its own ``limiter_type()`` (a limiter being tried can stand in), told
    that the account is shared when there are several, as ``fwprep batch
    --shard k/N`` tells it (``shared`` says otherwise). Items
    are dealt out in turn, or with ``by_hash`` split as ``fwprep batch
    --shard k/N`` splits them, by the hash of each item's key: shards of
    unequal size, as real ones are (75 items each on average may be 68 to 82),
    a different split for each ``account.seed``.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    outcomes: list[list[bool]] = [[] for _ in range(clients)]

    async def one_client(k: int) -> None:
        await asyncio.sleep(k * stagger)
        if by_hash:
            shard = Shard(k + 1, clients)
            names = (f"accounts/a/models/m{account.seed}-{i}" for i in range(items))
            mine = [(name, "FP8") for name in names if shard.owns(f"{name}@FP8")]
        else:
            mine = [(f"accounts/a/models/m{i}", "FP8") for i in range(k, items, clients)]
        options = dict(client_options)
        if "limiter" not in options and "max_rps" not in options:
            # The default limiter, its random stretch seeded: the run repeats exactly.
            rng = random.Random(account.seed * 1000 + k)
            crowd = clients > 1 if shared is None else shared
            options["limiter"] = limiter_type(clock=LoopClock(), rng=rng, shared=crowd)
        client = FireworksClient(
            "key", transport=account.transport(k), clock=LoopClock(), **options
        )
        client._rng = random.Random(account.seed * 7919 + k)  # backoffs' jitter: a run repeats
        async with client:
            async for outcome in client.prepare_many(mine):
                outcomes[k].append(outcome.ok)

    await asyncio.gather(*(one_client(k) for k in range(clients)))
    wall = loop.time() - start
    late = [status for t, status in account.log if t - start > 10.0]
    ok = sum(sum(o) for o in outcomes)
    return Run(
        wall=wall,
        ideal=items / (account.rpm / 60),
        ok=ok,
        failed=sum(len(o) for o in outcomes) - ok,
        throttled=account.count(429),
        late_throttled=late.count(429),
        requests=len(late),
        per_client_ok=tuple(account.answers[k, 200] for k in range(clients)),
    )
