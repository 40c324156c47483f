"""FireworksClient: the asyncio client for preparing models, one or many at a time."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Iterable,
)
from types import TracebackType
from typing import Self

import aiohttp
import attrs

from fwprep._checks import check_count, check_items, check_positive, coerce_item
from fwprep._clock import SYSTEM_CLOCK, Clock
from fwprep._convert import describe_structure_error, structure_model
from fwprep._gate import GATE
from fwprep._pool import bounded_map, lend_place
from fwprep._protocol import (
    DEFAULT_BASE_URL,
    MAX_PAGE_SIZE,
    Request,
    build_get_model_request,
    build_list_models_request,
    build_prepare_request,
    check_base_url,
    classify_response,
)
from fwprep._slots import Slots
from fwprep.credentials import resolve_credentials
from fwprep.errors import (
    ClientClosedError,
    ConfigError,
    FwprepError,
    InputError,
    PreparationFailedError,
    TransportError,
    UnexpectedResponseError,
    WaitTimeoutError,
)
from fwprep.limits import AdaptiveRateLimiter, FixedRateLimiter, RateLimiter
from fwprep.listing import ModelListing
from fwprep.models import Model, PrepareItem, PrepareOutcome
from fwprep.names import ModelRef, validate_id
from fwprep.precision import Precision
from fwprep.retry import Action, Charge, RetryBudget, RetryPolicy, Verdict
from fwprep.transport import (
    PROXY_FROM_ENVIRONMENT,
    AiohttpTransport,
    ProxySetting,
    Response,
    SendFunction,
    Transport,
    as_transport,
)
from fwprep.waiting import Waiter, WaitOutcome

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WAIT_TIMEOUT",
    "FireworksClient",
    "ItemLike",
]

logger = logging.getLogger("fwprep")

ItemLike = PrepareItem | tuple[ModelRef | str, Precision | str | None]
"""What :meth:`FireworksClient.prepare_many` accepts: an item, or a (model, precision) pair."""

DEFAULT_MAX_CONCURRENCY = 16
"""Requests in flight at once, unless ``max_concurrency`` says otherwise."""
DEFAULT_TIMEOUT = 60.0
"""Seconds one request may take, unless ``timeout`` says otherwise."""
DEFAULT_WAIT_TIMEOUT = 1800.0
"""Seconds a wait for a preparation may take (30 minutes, as firectl's ``--wait-timeout``)."""
DEFAULT_POLL_INTERVAL = 5.0
"""Seconds between reads of a model while waiting for its preparation."""


_SUCCEEDED = (Action.SUCCESS, Action.ALREADY_DONE)


# The two records below are made once or twice a request and never leave the module:
# `attrs.define` builds them about three times faster than `attrs.frozen`.
@attrs.define
class _Exchange:
    """The end of one request after its retries."""

    status: int | None
    body: bytes
    error: FwprepError | None
    attempts: int
    elapsed: float


@attrs.define
class _Attempt:
    """One attempt: the answer's status and body (if one came) and what it means."""

    status: int | None
    body: bytes
    result: Verdict | TransportError
    sent_at: float


def _check_together(
    transport: Transport | SendFunction | None,
    session: aiohttp.ClientSession | None,
    networked: object,
) -> None:
    """What goes with a transport of one's own: neither a session nor a proxy or CA bundle."""
    if transport is not None and session is not None:
        raise ConfigError("give a transport or a session, not both")
    if transport is not None and networked:
        raise ConfigError("proxy and ca_bundle are the default transport's: not with transport")
    if session is not None and session.closed:
        raise ConfigError("the aiohttp session given to the client is already closed")


class FireworksClient:
    """An asyncio client for the Fireworks prepare-model API.

    Use it as an async context manager, so its connection pool is closed::

        async with FireworksClient() as client:
            await client.prepare_model("accounts/acme/models/ft-7", "fp8")
            async for outcome in client.prepare_many(items):
                print(outcome.item.key, "ok" if outcome.ok else outcome.error)

    Args:
        api_key: the Fireworks API key; default ``FIREWORKS_API_KEY``, else
            firectl's ``~/.fireworks/auth.ini`` (see :mod:`fwprep.credentials`).
            A missing key raises :class:`~fwprep.ConfigError` here, not a 401
            later. The key is never shown in a repr, a log record or an error.
        account_id: the account for bare model ids; default
            ``FIREWORKS_ACCOUNT_ID``, else the ``auth.ini``'s ``account_id``.
        base_url: the API root; default ``FIREWORKS_BASE_URL``, else
            ``https://api.fireworks.ai``. Plain ``http://`` is refused unless
            the host is loopback.
        max_concurrency: the most requests in flight at once. Requests wait
            for a free slot *before* they are handed to the transport, so time
            spent queued never counts against ``timeout``.
        max_rps: a fixed limit in requests per second for each account,
            evenly spaced. With ``None`` (the default) the client adapts: it
            cuts an account's send rate on each burst of 429 answers and
            regrows it slowly, settling under the server's limit.
        retry: the :class:`~fwprep.RetryPolicy`.
        timeout: seconds one attempt may take, connecting included
            (connecting alone: at most 5 s).
        session: an ``aiohttp.ClientSession`` to send with instead of the
            client's own; the caller then closes it. ``timeout`` still applies
            to each request.
        retry_budget: a :class:`~fwprep.RetryBudget` to share, for example
            between several clients; by default each client has its own.
        transport: what sends each request (see :mod:`fwprep.transport`): a
            :class:`~fwprep.Transport`, or a plain async function that takes a
            :class:`~fwprep.Request` and returns a :class:`~fwprep.Response`;
            default an :class:`~fwprep.AiohttpTransport`. Not with ``session``.
        limiter: one rate limiter (:class:`~fwprep.AdaptiveRateLimiter`,
            :class:`~fwprep.FixedRateLimiter` or your own) for every request,
            whatever its account, for example one shared by several clients.
            Without it, each account gets a limiter of its own on its first
            request (see :meth:`limiter_for`). Not with ``max_rps``.
        clock: where the client reads the time and sleeps (see
            :class:`~fwprep.Clock`); tests pass a simulated one.
        proxy: the HTTP proxy to send through: by default the environment's
            (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, as curl reads them),
            a URL such as ``http://user:password@proxy:3128``, or ``None`` for
            none. See :class:`~fwprep.AiohttpTransport`.
        ca_bundle: a PEM file of certificate authorities to trust instead of
            the system's (``SSL_CERT_FILE`` is honoured without it).
        profile: a firectl profile whose ``auth.ini`` holds the key and the
            account (``~/.fireworks/profiles/<profile>/auth.ini``); default
            ``FIREWORKS_PROFILE``. Named here, it comes before
            ``FIREWORKS_API_KEY``, and a missing profile raises.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        account_id: str | None = None,
        base_url: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_rps: float | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        retry_budget: RetryBudget | None = None,
        transport: Transport | SendFunction | None = None,
        limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        profile: str | None = None,
        proxy: ProxySetting = PROXY_FROM_ENVIRONMENT,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        credentials = resolve_credentials(api_key, account_id=account_id, profile=profile)
        check_count("max_concurrency", max_concurrency)
        if max_rps is not None:
            check_positive("max_rps", max_rps, "requests a second")
        check_positive("timeout", timeout)
        _check_together(transport, session, proxy is not PROXY_FROM_ENVIRONMENT or ca_bundle)
        if limiter is not None and max_rps is not None:
            raise ConfigError("give a limiter or max_rps, not both")
        self._api_key = credentials.api_key
        self.account_id: str | None = credentials.account_id
        self.credentials_source: str = credentials.describe()
        """Where the key and the account came from (places, never the key), for ``-v``."""
        self.base_url: str = check_base_url(
            base_url or os.environ.get("FIREWORKS_BASE_URL") or DEFAULT_BASE_URL
        )
        self.max_concurrency = max_concurrency
        self.retry: RetryPolicy = retry or RetryPolicy()
        self.retry_budget: RetryBudget = retry_budget or RetryBudget()
        self.timeout = float(timeout)
        self.clock: Clock = clock or SYSTEM_CLOCK
        self._max_rps = max_rps
        self._shared_limiter = limiter
        self._limiters: dict[str | None, RateLimiter] = {}
        self.transport: Transport = (
            as_transport(transport)
            if transport is not None
            else AiohttpTransport(
                timeout=self.timeout,
                limit=max_concurrency,
                session=session,
                proxy=proxy,
                ca_bundle=ca_bundle,
            )
        )
        self._slots: tuple[asyncio.AbstractEventLoop, Slots] | None = None
        self._closed = False
        self._throttled_since: float | None = None
        self._rng = random.Random()

    def __repr__(self) -> str:
        return (
            f"FireworksClient(base_url={self.base_url!r}, account_id={self.account_id!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    async def __aenter__(self) -> Self:
        self._closed = False  # each ``async with`` block (re)opens the client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, if the client created it.

        A closed client sends nothing: a request raises
        :class:`~fwprep.ClientClosedError` at once, until an ``async with``
        block opens it again (with a new connection pool, in whatever event
        loop is running then).
        """
        self._closed = True
        await self.transport.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(
                "the client is closed: send inside `async with client:` (which reopens it)"
            )

    def _slots_here(self) -> Slots:
        """The concurrency slots of the running event loop (their waiters belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, Slots(self.max_concurrency))
        return self._slots[1]

    @property
    def limiter(self) -> RateLimiter:
        """The limiter of the client's own account (``account_id``); see :meth:`limiter_for`."""
        return self.limiter_for(self.account_id)

    def limiter_for(self, account: str | None) -> RateLimiter:
        """The limiter that paces the requests of ``account``.

        Fireworks gives each account a budget of its own, so the client keeps
        one limiter per account, made on the account's first request (a
        :class:`~fwprep.FixedRateLimiter` of ``max_rps``, or an
        :class:`~fwprep.AdaptiveRateLimiter`): one account's 429s and pauses
        never slow another's requests. A ``limiter`` given to the client
        paces every account instead.
        """
        if self._shared_limiter is not None:
            return self._shared_limiter
        found = self._limiters.get(account)
        if found is None:
            found = self._limiters[account] = (
                FixedRateLimiter(self._max_rps, clock=self.clock)
                if self._max_rps is not None
                else AdaptiveRateLimiter(clock=self.clock)
            )
        return found

    def item(self, raw: ItemLike) -> PrepareItem:
        """Turn a :class:`~fwprep.PrepareItem` or a ``(model, precision)`` pair into an item.

        Bare model ids go to the client's account.

        Raises:
            InputError: naming the item, when it is neither of those shapes
                or names an invalid model or precision.
        """
        return coerce_item(raw, self.account_id)

    def model_ref(self, model: ModelRef | str) -> ModelRef:
        """Parse ``model`` as a full name or a bare id in the client's account."""
        return ModelRef.parse(model, self.account_id)

    # -- one request ---------------------------------------------------------------

    async def _attempt(self, request: Request, *, retry: bool = False) -> _Attempt:
        """Send once (in a slot, at the limiter's pace) and classify what came back.

        In a batch that stops (see :mod:`fwprep._gate`), raises
        :class:`~fwprep._gate.RequestNotSent` instead of sending.
        """
        gate = GATE.get()
        if gate is not None:
            gate.check(retry=retry)
        limiter = self.limiter_for(request.account)
        # The account's pace first, then a slot: waiting for one account's pace holds no
        # slot that another account's request could use.
        sent_at = await limiter.acquire()
        slots = self._slots_here()
        if not slots.take_now():
            await slots.take()
        try:
            if gate is None:  # outside a batch (no context manager: two calls fewer)
                response: Response | TransportError = await self.transport(request)
            else:
                with gate.sending(retry=retry):
                    response = await self.transport(request)
        except TransportError as exc:
            response = exc
        finally:
            slots.give()
        if isinstance(response, TransportError):
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("%s %s failed: %s", request.method, request.path, response)
            return _Attempt(None, b"", response, sent_at)
        status = response.status
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s -> %d", request.method, request.path, status)
        verdict = classify_response(status, response.headers, response.body)
        if status == 429:
            if verdict.retry_after:
                # The limiter decides whether every request of the account waits
                # (no longer than the policy obeys: a longer wait fails the item).
                limiter.pause(min(verdict.retry_after, self.retry.max_retry_after))
            limiter.on_throttle(sent_at)
        else:
            limiter.on_success(sent_at)
        return _Attempt(status, response.body, verdict, sent_at)

    def _throttled_for(self, sent: _Attempt) -> float:
        """How long the client has been throttled, no request succeeding since its first 429."""
        if sent.status != 429:
            result = sent.result
            if isinstance(result, Verdict) and result.action in _SUCCEEDED:
                self._throttled_since = None
            return 0.0
        now = self.clock.now()
        if self._throttled_since is None:
            self._throttled_since = now
        return now - self._throttled_since

    async def _exchange(self, request: Request) -> _Exchange:
        """Send ``request`` until it succeeds or may not be retried; only a closed client raises.

        Each attempt is sent and classified, the policy decides the next step,
        the budget pays for a retry, and the clock waits.
        """
        self._check_open()
        spent = attempt = throttled = 0
        started: float | None = None
        while True:
            attempt += 1
            sent = await self._attempt(request, retry=attempt > 1)
            started = sent.sent_at if started is None else started
            throttled += sent.status == 429
            step = self.retry.decide(
                attempt,
                sent.result,
                self._rng,
                throttled=throttled,
                throttled_for=self._throttled_for(sent),
            )
            if step.retry and step.charge is not Charge.NONE:
                cost = self.retry_budget.try_acquire(timeout=step.charge is Charge.TIMEOUT)
                if cost is None:
                    step = step.give_up("not retried: the client's retry budget is spent")
                spent += cost or 0
            if not step.retry:
                if step.error is None:
                    self.retry_budget.release(spent)
                elapsed = self.clock.now() - started
                return _Exchange(sent.status, sent.body, step.error, attempt, elapsed)
            if step.wait > 0:
                if (gate := GATE.get()) is not None:
                    gate.check(retry=True)  # a stopped batch sends no retry: no point waiting
                async with lend_place():  # in prepare_many or a batch: the next item goes
                    await self.clock.sleep(step.wait)

    # -- the public calls ---------------------------------------------------------

    async def prepare(self, item: PrepareItem) -> PrepareOutcome:
        """Prepare one item and report what happened; never raises for a failed request.

        This is what :meth:`prepare_many` runs for each item. Errors are in
        ``outcome.error``; only cancellation escapes.
        """
        request = build_prepare_request(self.base_url, self._api_key, item)
        exchange = await self._exchange(request)
        return PrepareOutcome(
            item=item,
            ok=exchange.error is None,
            error=exchange.error,
            attempts=exchange.attempts,
            elapsed=exchange.elapsed,
            http_status=exchange.status,
        )

    async def prepare_model(
        self,
        model: ModelRef | str,
        precision: Precision | str | None = None,
        *,
        read_mask: str | None = None,
    ) -> PrepareOutcome:
        """Ask the API to prepare ``model`` for ``precision``.

        The API answers as soon as preparation has *started*; use
        :meth:`wait_until_prepared` to wait for it to finish. With
        ``precision=None`` the field is left out and the API chooses.
        A 409 ``ALREADY_EXISTS`` answer counts as success.

        Returns:
            The :class:`~fwprep.PrepareOutcome` (attempts, elapsed time, status).

        Raises:
            InputError: for a bad model reference or precision, before sending.
            ApiError: a subclass per status, after any retries.
            TransportError: when no answer arrived, after any retries.
        """
        item = PrepareItem(self.model_ref(model), precision, read_mask)
        outcome = await self.prepare(item)
        if outcome.error is not None:
            raise outcome.error
        return outcome

    async def get_model(self, model: ModelRef | str, *, read_mask: str | None = None) -> Model:
        """Read the model resource (its state, status and prepared precisions).

        Raises:
            ApiError: for an error status (404 when there is no such model),
                or :class:`~fwprep.UnexpectedResponseError` when a 200 answer
                is not a Model.
            TransportError: when no answer arrived, after any retries.
        """
        ref = self.model_ref(model)
        request = build_get_model_request(self.base_url, self._api_key, ref, read_mask)
        exchange = await self._exchange(request)
        if exchange.error is not None:
            raise exchange.error
        status = exchange.status or 200
        try:
            return structure_model(json.loads(exchange.body))
        except ValueError as exc:
            raise UnexpectedResponseError(
                status, f"the model {ref} came back as invalid JSON ({exc})"
            ) from None
        except Exception as exc:
            raise UnexpectedResponseError(
                status, f"the model {ref} came back malformed: {describe_structure_error(exc)}"
            ) from None

    def list_models(
        self,
        account_id: str | None = None,
        *,
        filter: str | None = None,
        order_by: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        read_mask: str | None = None,
    ) -> ModelListing:
        """Every model of an account, as an async iterator that fetches a page at a time.

        ``account_id`` defaults to the client's. ``filter`` (an AIP-160
        expression such as ``create_time > timestamp("2026-01-01T00:00:00Z")``),
        ``order_by`` (``"name desc"``) and ``read_mask`` go to the server as
        written; every page repeats them with the previous page's token.
        ``page_size`` is at most 200 (larger is sent as 200): one page, one
        request of the account's budget. See :class:`~fwprep.ModelListing`
        for what iterating raises.

        Raises:
            InputError: no account (neither here nor on the client), or a bad
                account id.
            ConfigError: a page size that is not a whole number >= 1.
        """
        account = account_id or self.account_id
        if account is None:
            raise InputError("no account to list: pass account_id or set FIREWORKS_ACCOUNT_ID")
        validate_id(account, "account id")
        size = check_count("page_size", page_size)
        self._check_open()

        async def fetch(token: str | None) -> bytes:
            request = build_list_models_request(
                self.base_url,
                self._api_key,
                account,
                page_size=size,
                page_token=token,
                filter=filter,
                order_by=order_by,
                read_mask=read_mask,
            )
            exchange = await self._exchange(request)
            if exchange.error is not None:
                raise exchange.error
            return exchange.body

        return ModelListing(account, fetch, size)

    async def wait_until_prepared(
        self,
        model: ModelRef | str,
        precision: Precision | str,
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Model:
        """Poll the model until ``precision`` shows among its prepared precisions.

        Done when the precision appears in ``supportedPrecisions`` (or the
        older ``precisions`` field). A ``status`` with a code other than OK
        means preparation failed. Any ``state``, known or not, is taken as
        still in progress.

        Returns:
            The model as last read, with the precision on it.

        Raises:
            PreparationFailedError: the model's status reports a failure.
            WaitTimeoutError: ``timeout`` seconds passed first.
            ApiError, TransportError: reading the model failed after retries.
        """
        ref = self.model_ref(model)
        wanted = Precision.parse(precision)
        check_positive("timeout", timeout)
        check_positive("poll_interval", poll_interval)
        import anyio  # only waiting on one model needs its cancel scope

        with anyio.move_on_after(timeout) as scope:
            while True:
                found = await self.get_model(ref)
                if found.has_precision(wanted):
                    return found
                if found.failed and found.status is not None:
                    raise PreparationFailedError(ref.name, found.status.code, found.status.message)
                await self.clock.sleep(poll_interval)
        assert scope.cancelled_caught
        raise WaitTimeoutError.after(ref, wanted, timeout)

    def wait_many(
        self,
        items: Iterable[ItemLike],
        *,
        timeout: float = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> AsyncGenerator[WaitOutcome, None]:
        """Wait on many accepted preparations at once; yield each outcome as it is known.

        The items (each with a precision) wait in one set that holds no
        concurrency slot, read in rounds from list pages or model by model,
        whichever costs fewer requests, less often as the wait grows (see
        :class:`~fwprep.Waiter`). ``timeout`` counts from the call::

            accepted = [o.item async for o in client.prepare_many(items) if o.ok]
            async for outcome in client.wait_many(accepted, timeout=3600):
                print(outcome.item.key, "ok" if outcome.ok else outcome.error)

        A failed wait is an outcome with ``ok=False`` and its ``error``
        (:class:`~fwprep.PreparationFailedError`, :class:`~fwprep.WaitTimeoutError`,
        or the error reading the model ended with), never an exception.
        ``run_batch(wait=True)`` does the same while it is still sending.

        Raises:
            InputError: an item is malformed or has no precision (at the call).
            ConfigError: a bad ``timeout`` or ``poll_interval``, or the client is closed.
        """
        waiter = Waiter(
            self,
            timeout=check_positive("timeout", timeout),
            poll_interval=check_positive("poll_interval", poll_interval),
        )
        self._check_open()
        for raw in items:
            item = self.item(raw)
            if item.precision is None:
                raise InputError(f"{item.key}: no precision to wait for")
            waiter.add(item)
        waiter.close()
        return waiter.outcomes()

    def prepare_many(
        self,
        items: Iterable[ItemLike] | AsyncIterable[ItemLike],
        *,
        concurrency: int | None = None,
    ) -> AsyncGenerator[PrepareOutcome, None]:
        """Prepare many items concurrently; yield one outcome per item as each finishes.

        Items are pulled from ``items`` lazily, at most ``concurrency``
        (default: ``max_concurrency``) at a time, so memory stays flat however
        long the input is. An item waiting to retry (a ``Retry-After``, a
        backoff) lends its place to the next item meanwhile, up to
        ``concurrency`` items at once: a wait sends nothing, so it holds no
        place, and still no more than ``concurrency`` requests are in flight.
        A failed item is an outcome with ``ok=False``,
        never an exception, so one bad model does not stop the others.
        ``(model, precision)`` pairs are accepted beside
        :class:`~fwprep.PrepareItem`; an item of another shape, or a pair that
        is not a valid model or precision, raises :class:`~fwprep.InputError`
        when it is reached, since that is a mistake in the calling code
        (:func:`~fwprep.run_batch` records such items as ``invalid`` instead).

        To stop early, close the generator: the items in flight are cancelled
        at once. ``aclosing`` does that however the loop ends::

            async with contextlib.aclosing(client.prepare_many(items)) as outcomes:
                async for outcome in outcomes:
                    if not outcome.ok:
                        break

        A bare ``break`` leaves the generator open (Python closes it only when
        it is garbage-collected, or at the loop's shutdown), and its workers
        keep sending until then.

        Raises:
            ConfigError: ``concurrency`` below 1 (at the call, before anything
                is sent), or the client is closed.
        """
        limit = check_count(
            "concurrency", self.max_concurrency if concurrency is None else concurrency
        )
        self._check_open()
        check_items(items)
        source = aiter(items) if isinstance(items, AsyncIterable) else items
        # One generator, not one wrapped in another: at a loop's shutdown, Python closes
        # every open async generator at once, and a wrapped one would be closed twice.
        return bounded_map(source, self._prepare_raw, limit)

    def _prepare_raw(self, raw: ItemLike) -> Awaitable[PrepareOutcome]:
        # Not a coroutine of its own: one frame fewer for every item's every resume.
        return self.prepare(coerce_item(raw, self.account_id))
