"""The emulator's HTTP application: the Fireworks control-plane subset fwprep speaks."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any, Literal

import attrs
from aiohttp import web

from fwprep._protocol import GRPC_CODE_NAMES
from fwprep.emulator.budget import SHAPES, Budget, LimitShape, RetryAfter
from fwprep.emulator.catalog import CatalogEntry, _str_tuple
from fwprep.emulator.defaults import DEFAULT_API_KEY
from fwprep.emulator.listing import ListingError, PageRequest, page_of
from fwprep.emulator.wire import Reject, html_page, model_json, parse_prepare_body
from fwprep.names import _ID_RE

__all__ = [
    "CatalogEntry",
    "EmulatorConfig",
    "EmulatorStats",
    "ErrorFormat",
    "Faults",
    "ReceivedRequest",
    "build_app",
]

ErrorFormat = Literal["google", "nested", "flat", "html", "empty"]
"""How error bodies look: ``google`` ``{"code": 5, "message", "details"}``;
``nested`` ``{"error": {"code", "message", "status"}}``; ``flat``
``{"error": "Not Found", "message"}``; ``html`` a proxy's HTML page; ``empty``
no body at all. The status code is the same in every format."""

_HTTP_FOR_CODE = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def _probability(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attr.name} must be a probability between 0 and 1, got {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{attr.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen
class Faults:
    """Faults the emulator injects, each with its own probability per request.

    One random draw per request decides which fault (if any) it meets, so
    the probabilities add up and must not exceed 1. With a seed in the
    :class:`EmulatorConfig`, the same sequence of requests meets the same
    sequence of faults.

    Attributes:
        error_500: answer 500 INTERNAL.
        error_503: answer 503 UNAVAILABLE.
        throttle_429: answer 429 RESOURCE_EXHAUSTED with no rate limit behind it.
        bad_gateway: answer 502 with an HTML page, as a proxy would.
        reset: read the request, then drop the connection without answering.
        stall: hold the request for ``stall_seconds`` before answering, to
            outlast the client's timeout.
        stall_seconds: how long a stall lasts.
        latency_ms: added to every request before it is handled.
        latency_max_ms: when set, latency is uniform between ``latency_ms``
            and this.
    """

    error_500: float = attrs.field(default=0.0, validator=_probability)
    error_503: float = attrs.field(default=0.0, validator=_probability)
    throttle_429: float = attrs.field(default=0.0, validator=_probability)
    bad_gateway: float = attrs.field(default=0.0, validator=_probability)
    reset: float = attrs.field(default=0.0, validator=_probability)
    stall: float = attrs.field(default=0.0, validator=_probability)
    stall_seconds: float = attrs.field(default=300.0, validator=_non_negative)
    latency_ms: float = attrs.field(default=0.0, validator=_non_negative)
    latency_max_ms: float | None = None

    def __attrs_post_init__(self) -> None:
        total = sum(p for _name, p in self.chances())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:g}, more than 1")
        if self.latency_max_ms is not None and self.latency_max_ms < self.latency_ms:
            raise ValueError("latency_max_ms must be >= latency_ms")

    def chances(self) -> tuple[tuple[str, float], ...]:
        """The fault kinds and their probabilities, in the order they are drawn."""
        return (
            ("reset", self.reset),
            ("stall", self.stall),
            ("error_500", self.error_500),
            ("error_503", self.error_503),
            ("throttle_429", self.throttle_429),
            ("bad_gateway", self.bad_gateway),
        )


def _keys(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str | bytes):
        raise ValueError(
            f"api_keys must be a sequence of keys such as ('key-1', 'key-2'), got the text "
            f"{'...' if len(values) > 4 else repr(values)}; for one key, pass api_key=KEY"
        )
    return _str_tuple(values)


def _retry_after(value: RetryAfter | str | bool | None) -> RetryAfter:
    return RetryAfter.parse(value)


@attrs.frozen
class EmulatorConfig:
    """How an emulator behaves. Every setting has a harmless default.

    Attributes:
        api_keys: keys accepted as ``Authorization: Bearer <key>``; the first
            is the one :attr:`Emulator.api_key` reports.
        catalog: full model names (``accounts/a/models/m``) the emulator
            knows; any other model is 404. ``None`` means every model exists.
        open_catalog: with a catalog, models outside it exist too (as without
            one): the catalog is what an account holds at the start, listed
            from the first page, and a model first used later joins it. The
            demo account of ``--emulate`` is one.
        prepare_delay: seconds from an accepted prepare until the precision
            shows on the model.
        prepare_delay_max: when set, each preparation takes a time drawn
            uniformly between ``prepare_delay`` and this (real preparations
            vary: ``fwprep emulator --prepare-delay 5-30``).
        failure_rate: the chance that a preparation fails after its delay:
            the model's ``status`` becomes ``INTERNAL`` with a message, and
            the precision does not show.
        rpm: account-wide limit in requests per minute, one budget per
            account; ``None`` for no limit. Above it: 429 RESOURCE_EXHAUSTED.
        limit_shape: the budget's shape: ``bucket`` (a token bucket),
            ``window`` (a fixed calendar minute) or ``sliding`` (any trailing
            60 s); see :mod:`fwprep.emulator.budget`.
        burst: the bucket's depth in requests, at least 1; default one
            second's worth of ``rpm``.
        retry_after: what 429s say about when to come back, as a
            :class:`~fwprep.emulator.budget.RetryAfter` or its text: ``none``
            (the default, also ``False``), ``seconds`` (the wait rounded up to
            whole seconds, also ``True``), ``exact``, ``ms``
            (``retry-after-ms``) or ``fixed:N``. An injected 429's wait is 1 s.
        count_refused: refused requests spend the budget too.
        error_format: the shape of error bodies, see :data:`ErrorFormat`.
        faults: the :class:`Faults` to inject.
        seed: makes fault draws and latencies reproducible.
        record_requests: keep every API request received (method, path and
            query, headers, body) in :attr:`EmulatorStats.received`, for
            checking them against the contract.
    """

    api_keys: tuple[str, ...] = attrs.field(default=(DEFAULT_API_KEY,), converter=_keys)
    catalog: Mapping[str, CatalogEntry] | None = None
    open_catalog: bool = False
    prepare_delay: float = attrs.field(default=0.0, validator=_non_negative)
    prepare_delay_max: float | None = None
    failure_rate: float = attrs.field(default=0.0, validator=_probability)
    rpm: float | None = None
    burst: float | None = None
    retry_after: RetryAfter = attrs.field(default=RetryAfter(), converter=_retry_after)
    limit_shape: LimitShape = "bucket"
    count_refused: bool = False
    error_format: ErrorFormat = "google"
    faults: Faults = attrs.field(factory=Faults)
    seed: int | None = None
    record_requests: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.api_keys or not all(self.api_keys):
            raise ValueError("api_keys must hold at least one non-empty key")
        if self.rpm is not None and not 0 < self.rpm < math.inf:
            raise ValueError(f"rpm must be a finite number > 0, got {self.rpm!r}")
        if self.burst is not None and not 1 <= self.burst < math.inf:
            raise ValueError(
                f"burst must be a finite number of requests >= 1 (a bucket shallower than "
                f"one request refuses every request), got {self.burst!r}"
            )
        if self.prepare_delay_max is not None and not (
            self.prepare_delay <= self.prepare_delay_max < math.inf
        ):
            raise ValueError("prepare_delay_max must be finite and >= prepare_delay")
        if self.limit_shape not in SHAPES:
            raise ValueError(f"unknown limit_shape {self.limit_shape!r}: use {', '.join(SHAPES)}")
        if self.error_format not in ("google", "nested", "flat", "html", "empty"):
            raise ValueError(f"unknown error_format {self.error_format!r}")


@attrs.frozen
class ReceivedRequest:
    """One request as the emulator received it (kept when ``record_requests`` is on)."""

    method: str
    path_qs: str
    headers: Mapping[str, str]
    body: bytes


@attrs.define
class EmulatorStats:
    """What an emulator has served so far. Read it in process or at ``GET /_emulator/stats``.

    Attributes:
        requests: every request to the API routes.
        prepare_requests: per key (``accounts/a/models/m@FP8``, as
            :attr:`fwprep.PrepareItem.key`), prepare requests received.
        prepare_successes: per key, prepares answered 200.
        statuses: per HTTP status, answers sent (a dropped connection is 0).
        faults: per fault kind, faults injected.
        in_flight: requests being handled now.
        max_in_flight: the most requests ever handled at once.
        dropped_by_client: requests whose client hung up before the answer
            (a client timeout or cancellation): counted, not logged as errors.
        received: the requests themselves, when ``record_requests`` is on.
        operations: per operation (``prepare``, ``get_model``,
            ``list_models``), requests that reached it past the faults and
            checks: what each part of a job cost in requests.
    """

    requests: int = 0
    prepare_requests: Counter[str] = attrs.field(factory=Counter)
    prepare_successes: Counter[str] = attrs.field(factory=Counter)
    statuses: Counter[int] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    dropped_by_client: int = 0
    received: list[ReceivedRequest] = attrs.field(factory=list)
    operations: Counter[str] = attrs.field(factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy (status codes become string keys)."""
        return {
            "requests": self.requests,
            "prepare_requests": dict(self.prepare_requests),
            "prepare_successes": dict(self.prepare_successes),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "faults": dict(self.faults),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "dropped_by_client": self.dropped_by_client,
            "operations": dict(self.operations),
        }


@attrs.define
class _ModelState:
    supported: list[str]
    calibrated: bool
    kind: str = "HF_BASE_MODEL"
    state: str = "READY"
    pending: dict[str, tuple[float, bool]] = attrs.field(factory=dict)  # ready at, fails
    status: tuple[str, str] = ("OK", "")


def _model_json(name: str, state: _ModelState) -> dict[str, Any]:
    return model_json(
        name, state.supported, state.calibrated, state.status, kind=state.kind, state=state.state
    )


class _Service:
    """The emulator's state and request handlers."""

    def __init__(self, config: EmulatorConfig, stats: EmulatorStats) -> None:
        self.config = config
        self.stats = stats
        self.rng = random.Random(config.seed)
        self.models: dict[str, _ModelState] = {}
        self.budgets: dict[str, Budget] = {}
        self.keys = frozenset(f"Bearer {k}" for k in config.api_keys)
        self.watchers: list[asyncio.Future[None]] = []
        self._names_cache: dict[str, tuple[int, list[str]]] = {}

    def notify(self) -> None:
        """Wake everyone waiting for the stats to change."""
        watchers, self.watchers = self.watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)

    # -- shared steps -----------------------------------------------------------

    def error(
        self, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        status = _HTTP_FOR_CODE.get(code, 500)
        return self.error_status(status, code, message, headers)

    def error_status(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        fmt = self.config.error_format
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        number = GRPC_CODE_NAMES.index(code) if code in GRPC_CODE_NAMES else 2
        if fmt == "google":
            body: bytes = json.dumps({"code": number, "message": message, "details": []}).encode()
            ctype = "application/json"
        elif fmt == "nested":
            payload = {"error": {"code": number, "message": message, "status": code}}
            body, ctype = json.dumps(payload).encode(), "application/json"
        elif fmt == "flat":
            body = json.dumps({"error": reason, "message": message}).encode()
            ctype = "application/json"
        elif fmt == "html":
            body, ctype = html_page(status, reason), "text/html"
        else:
            body, ctype = b"", "application/json"
        return web.Response(status=status, body=body, content_type=ctype, headers=headers)

    def check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise Reject("UNAUTHENTICATED", "missing Authorization header")
        if header not in self.keys:
            raise Reject("UNAUTHENTICATED", "invalid API key")

    def check_rate(self, account: str) -> None:
        rpm = self.config.rpm
        if rpm is None:
            return
        budget = self.budgets.get(account)
        now = time.monotonic()
        if budget is None:
            budget = self.budgets[account] = Budget(
                rpm,
                self.config.limit_shape,
                burst=self.config.burst,
                count_refused=self.config.count_refused,
                start=now,
                phase=time.time() % 60.0,  # calendar minutes, as a server's clock has them
            )
        wait = budget.take(now)
        if wait > 0:
            headers = self.config.retry_after.headers(wait)
            raise Reject(
                "RESOURCE_EXHAUSTED",
                f"request rate limit exceeded for account {account}: {rpm:g} requests/minute",
                headers,
            )

    def check_ids(self, account: str, model: str | None = None) -> str:
        """The model's full name, its ids checked (and, with a catalog, that it is there)."""
        for what, value in (("account id", account), ("model id", model or "any")):
            if not _ID_RE.fullmatch(value):
                raise Reject(
                    "INVALID_ARGUMENT",
                    f"invalid {what} {value!r}: ids are 1-63 characters of a-z, 0-9 and '-', "
                    "not starting or ending with '-'",
                )
        name = f"accounts/{account}/models/{model}"
        catalog, closed = self.config.catalog, not self.config.open_catalog
        if model is not None and catalog is not None and closed and name not in catalog:
            raise Reject("NOT_FOUND", f"model not found: {name}")
        return name

    def state_of(self, name: str) -> _ModelState:
        state = self.models.get(name)
        if state is None:
            entry = (self.config.catalog or {}).get(name) or CatalogEntry()
            state = self.models[name] = _ModelState(
                list(entry.supported_precisions), entry.calibrated, entry.kind, entry.state
            )
        return state

    def preparation(self) -> tuple[float, bool]:
        """When a preparation accepted now is done, and whether it fails then."""
        config = self.config
        delay = config.prepare_delay
        if config.prepare_delay_max is not None:
            delay = self.rng.uniform(delay, config.prepare_delay_max)
        return time.monotonic() + delay, self.rng.random() < config.failure_rate

    def settle(self, name: str, state: _ModelState) -> None:
        if not state.pending:
            return
        now = time.monotonic()
        entry = (self.config.catalog or {}).get(name)
        for precision, (ready_at, fails) in list(state.pending.items()):
            if ready_at > now:
                continue
            del state.pending[precision]
            if entry is not None and entry.fail_preparation is not None:
                state.status = (entry.fail_code, entry.fail_preparation)
            elif fails:
                state.status = ("INTERNAL", f"preparation for {precision} failed (emulated)")
            elif precision not in state.supported:
                state.supported.append(precision)

    async def inject(self, request: web.Request) -> web.StreamResponse | None:
        """Apply latency and at most one fault; return a response to send instead, if any."""
        faults = self.config.faults
        if faults.latency_ms or faults.latency_max_ms:
            high = faults.latency_max_ms if faults.latency_max_ms is not None else faults.latency_ms
            delay = self.rng.uniform(faults.latency_ms, high) / 1000.0
        else:
            delay = 0.0
        draw = self.rng.random()
        if delay > 0:
            await asyncio.sleep(delay)
        for kind, chance in faults.chances():
            if draw >= chance:
                draw -= chance
                continue
            self.stats.faults[kind] += 1
            if kind == "reset":
                await request.read()
                if request.transport is not None:
                    request.transport.abort()
                self.stats.statuses[0] += 1
                raise _Dropped
            if kind == "stall":
                await asyncio.sleep(faults.stall_seconds)
                return None
            if kind == "error_500":
                return self.error("INTERNAL", "internal error (injected)")
            if kind == "error_503":
                return self.error("UNAVAILABLE", "service unavailable (injected)")
            if kind == "throttle_429":
                headers = self.config.retry_after.headers(1.0)
                return self.error("RESOURCE_EXHAUSTED", "too many requests (injected)", headers)
            return web.Response(
                status=502, body=html_page(502, "Bad Gateway"), content_type="text/html"
            )
        return None

    async def front(
        self, request: web.Request, account: str, model: str | None = None
    ) -> str | web.StreamResponse:
        """What every API call goes through: faults, auth, the rate limit, the ids.

        Returns the model's full name (``model`` ``None``: a call on the
        account, whose id alone is checked), or the answer to send instead.
        """
        injected = await self.inject(request)
        if injected is not None:
            return injected
        self.check_auth(request)
        self.check_rate(account)
        return self.check_ids(account, model)

    # -- handlers -----------------------------------------------------------------

    async def prepare(self, request: web.Request) -> web.StreamResponse:
        spec = request.match_info["spec"]
        model, sep, verb = spec.rpartition(":")
        if not sep or verb != "prepare":
            return self.error("NOT_FOUND", f"no such method: POST {request.path}")
        name = await self.front(request, request.match_info["account"], model)
        if not isinstance(name, str):
            return name
        self.stats.operations["prepare"] += 1
        precision = parse_prepare_body(await request.read())
        key = name if precision is None else f"{name}@{precision}"
        self.stats.prepare_requests[key] += 1
        state = self.state_of(name)
        self.settle(name, state)
        if precision is not None:
            if precision not in state.pending:
                state.pending[precision] = self.preparation()
                state.status = ("OK", "")  # the status tells of the latest operation
            self.settle(name, state)
        self.stats.prepare_successes[key] += 1
        return web.Response(body=b"{}", content_type="application/json")

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        model = request.match_info["spec"]
        if ":" in model:
            return self.error("NOT_FOUND", f"no such method: GET {request.path}")
        name = await self.front(request, account, model)
        if not isinstance(name, str):
            return name
        self.stats.operations["get_model"] += 1
        state = self.state_of(name)
        self.settle(name, state)
        return web.json_response(_model_json(name, state))

    def names_in(self, account: str) -> list[str]:
        """Every model of ``account`` by name: the catalog's, or without one those seen so far."""
        prefix = f"accounts/{account}/models/"
        catalog, models = self.config.catalog, self.models
        known: Iterable[str] = models if catalog is None else catalog
        size = len(models) if catalog is None else len(catalog)
        if catalog is not None and self.config.open_catalog:
            known, size = {**catalog, **models}, len(catalog) + len(models)
        if self._names_cache.get(account, (-1, []))[0] != size:
            names = sorted(name for name in known if name.startswith(prefix))
            self._names_cache[account] = (size, names)
        return self._names_cache[account][1]

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        account = request.match_info["account"]
        answer = await self.front(request, account)
        if not isinstance(answer, str):
            return answer
        self.stats.operations["list_models"] += 1
        try:
            call = PageRequest.from_query(request.query)
            every = self.names_in(account)
            names, token = page_of(every, call)
        except ListingError as exc:
            raise Reject("INVALID_ARGUMENT", str(exc)) from None
        models = []
        for name in names:
            state = self.state_of(name)
            self.settle(name, state)
            models.append(_model_json(name, state))
        body: dict[str, Any] = {"models": models, "totalSize": len(every)}
        if token is not None:
            body["nextPageToken"] = token
        return web.json_response(body)

    async def stats_handler(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats.to_json())


class _Dropped(Exception):
    """The connection was dropped on purpose; there is nothing to answer."""


SERVICE = web.AppKey("fwprep.emulator.service", _Service)


def build_app(config: EmulatorConfig, stats: EmulatorStats) -> web.Application:
    """The aiohttp application serving ``config``, recording into ``stats``."""
    service = _Service(config, stats)

    @web.middleware
    async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
        """Count, record and answer for every API request; turn rejections into error bodies."""
        if request.path.startswith("/_emulator/"):
            response: web.StreamResponse = await handler(request)
            return response
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        service.notify()
        try:
            try:
                if config.record_requests:
                    body = await request.read()
                    received = ReceivedRequest(
                        request.method, request.path_qs, dict(request.headers), body
                    )
                    stats.received.append(received)
                response = await handler(request)
            except Reject as reject:
                response = service.error(reject.code, reject.message, reject.headers)
            except _Dropped:
                # The connection is already aborted; this answer is never written.
                return web.Response(status=500)
            except ConnectionResetError:
                # The client hung up (its timeout, a cancellation): nothing to answer.
                stats.dropped_by_client += 1
                return web.Response(status=499)
            except web.HTTPException as exc:
                code = "NOT_FOUND" if exc.status == 404 else "INVALID_ARGUMENT"
                if exc.status == 405:
                    code = "UNIMPLEMENTED"
                response = service.error_status(exc.status, code, exc.reason)
            stats.statuses[response.status] += 1
            return response
        finally:
            stats.in_flight -= 1
            service.notify()

    app = web.Application(middlewares=[count_requests])
    app[SERVICE] = service
    app.router.add_post("/v1/accounts/{account}/models/{spec}", service.prepare)
    app.router.add_get("/v1/accounts/{account}/models", service.list_models)
    app.router.add_get("/v1/accounts/{account}/models/{spec}", service.get_model)
    app.router.add_get("/_emulator/stats", service.stats_handler)
    return app
