"""The batch runner: many items, concurrently, each ending in a report record."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
)
from typing import Any

import attrs

from fwprep._checks import check_count, check_positive
from fwprep._gate import GATE, RequestNotSent, SendGate
from fwprep._pool import bounded_map, merge
from fwprep.batch.admit import Admission, Admitted, Shard, aiter_entries
from fwprep.batch.check import StateCheck
from fwprep.batch.journal import ReportIndex
from fwprep.batch.manifest import InvalidRow, ManifestEntry, ManifestError
from fwprep.batch.report import ErrorInfo, Record, ReportError, ReportWriter
from fwprep.batch.status import RecordStatus
from fwprep.batch.summary import BatchSummary
from fwprep.client import DEFAULT_POLL_INTERVAL, DEFAULT_WAIT_TIMEOUT, FireworksClient
from fwprep.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    FwprepError,
    PermissionDeniedError,
)
from fwprep.models import PrepareItem
from fwprep.waiting import Waiter, WaitOutcome

__all__ = ["DEFAULT_GRACE", "BatchOptions", "BatchRunner"]

DEFAULT_GRACE = 5.0
"""Seconds items in flight get to finish after a graceful stop."""

STOP_EVENT = "the stop event"
"""What :attr:`BatchSummary.interrupted` says when a batch's ``stop`` event stopped it."""


def _seconds(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    check_positive(attr.name, value)


def _grace(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(f"{attr.name} must be a finite number of seconds >= 0, got {value!r}")


def _optional_count(_inst: object, attr: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None:
        check_count(attr.name, value)


def _to_shard(value: Shard | str | None) -> Shard | None:
    if value is None or isinstance(value, Shard):
        return value
    if isinstance(value, str):
        return Shard.parse(value)
    raise ConfigError(f"shard must be a Shard or text such as '1/4', got {value!r}")


@attrs.frozen
class BatchOptions:
    """How a batch runs. Every value is checked here, so a wrong one fails before anything is sent.

    Attributes:
        check: read each model's state first; a precision it already has is
            ``skipped``. An account whose models fit in fewer list pages (200
            a request) than there are items is listed once instead of read
            model by model.
        wait: after each prepare is accepted, wait until the precision shows
            on the model. Accepted items are recorded ``accepted`` and wait
            in one set, holding no concurrency slot, read in rounds (see
            :class:`~fwprep.Waiter`) while the batch goes on sending.
        wait_timeout: how long each wait may take, in seconds from acceptance.
        poll_interval: seconds from acceptance to an item's first read, and
            the shortest interval between its reads (longer waits are read
            less often, up to once a minute).
        max_failures: halt after this many failed items (``None``: never).
        shard: run only this :class:`Shard` of the items (``"2/4"`` is read
            as ``Shard.parse("2/4")``).
        concurrency: items in progress at once (default: the client's
            ``max_concurrency``).
        grace: seconds items in flight get to finish after a graceful stop.

    Raises:
        ConfigError: for a value out of range (``concurrency=0``, a negative
            timeout, ...), naming it.
    """

    check: bool = False
    wait: bool = False
    wait_timeout: float = attrs.field(default=DEFAULT_WAIT_TIMEOUT, validator=_seconds)
    poll_interval: float = attrs.field(default=DEFAULT_POLL_INTERVAL, validator=_seconds)
    max_failures: int | None = attrs.field(default=None, validator=_optional_count)
    shard: Shard | None = attrs.field(default=None, converter=_to_shard)
    concurrency: int | None = attrs.field(default=None, validator=_optional_count)
    grace: float = attrs.field(default=DEFAULT_GRACE, validator=_grace)


@attrs.frozen
class _Ending:
    """How an item's work ended, before it becomes its final record."""

    status: RecordStatus
    attempts: int | None = None
    http_status: int | None = None
    error: BaseException | ErrorInfo | None = None


def _record(item: PrepareItem, ending: _Ending, elapsed: float | None = None) -> Record:
    """The one place an item's record is built."""
    error = ending.error
    return Record(
        key=item.key,
        status=ending.status,
        model=item.model.name,
        precision=item.precision.value if item.precision else None,
        source=item.source,
        line=item.line,
        attempts=ending.attempts,
        elapsed_ms=None if elapsed is None else elapsed * 1000.0,
        http_status=ending.http_status,
        error=ErrorInfo.of(error) if isinstance(error, BaseException) else error,
    )


def _row_record(row: InvalidRow) -> Record:
    return Record(
        key=None,
        status="invalid",
        model=row.model,
        precision=row.precision,
        source=row.source,
        line=row.line,
        error=ErrorInfo("InvalidRow", None, str(row)),
    )


class BatchRunner:
    """Runs items through a client, writing a record per state change to a report.

    Every item ends with exactly one final record; an exception in one item
    becomes its ``failed`` record and never stops the others. A 401 or 403
    halts the batch (no new item starts), as does reaching
    ``max_failures``. :meth:`stop` is the graceful stop for signals.

    Args:
        client: the :class:`~fwprep.FireworksClient` to send with.
        options: the :class:`BatchOptions` (default: all defaults).
        report: where records are written; ``None`` writes nothing.
        done: keys to skip, from an earlier report (``--resume``).
        on_record: called with each final record, and with each ``accepted``
            one (progress display).
        expected: how many items the batch will run, when known: ``check``
            then lists an account whose pages are fewer than that instead of
            reading each model (see :class:`~fwprep.batch.check.StateCheck`).
        resumed: an earlier report as :func:`~fwprep.batch.journal.index_report`
            reads it (``--resume``): its done items are skipped, its accepted
            ones waited on (with ``wait``) or skipped (without).
    """

    def __init__(
        self,
        client: FireworksClient,
        options: BatchOptions | None = None,
        *,
        report: ReportWriter | None = None,
        done: Iterable[str] = (),
        on_record: Callable[[Record], None] | None = None,
        expected: int | None = None,
        resumed: ReportIndex | None = None,
    ) -> None:
        self.client = client
        self.options = options = options or BatchOptions()
        self.report = report
        self._resumed = resumed
        self.admission = Admission(
            shard=options.shard,
            done=done,
            resumed=resumed,
            wait=options.wait,
        )
        self.concurrency = options.concurrency or client.max_concurrency
        self.on_record = on_record
        self.summary = BatchSummary(report=str(report.path) if report else None)
        self._stopping = False
        self._report_error: ReportError | None = None
        # Tasks inside an item's requests: the item, and when it started.
        self._working: dict[asyncio.Task[Any], tuple[PrepareItem, float]] = {}
        self._grace_cancelled: set[asyncio.Task[Any]] = set()
        self._unsent: set[asyncio.Task[Any]] = set()  # cancelled before their request left
        self.gate = SendGate()
        self._cancel_timer: asyncio.TimerHandle | None = None
        self.waiter = Waiter(
            client, timeout=options.wait_timeout, poll_interval=options.poll_interval
        )
        self._prepare_elapsed: dict[str, float] = {}  # an accepted item's time to acceptance
        self.state_check = StateCheck(client, expected=expected, fallback=self.concurrency)

    # -- stopping ---------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether the batch has stopped starting new items."""
        return self._stopping

    def halt(self, reason: str, *, send_admitted: bool = False) -> None:
        """Start no new item and send no new request; let the requests on the wire finish.

        Items waiting for a slot, for the limiter or to retry are recorded
        ``interrupted`` at once (nothing of theirs is on the wire), unless
        ``send_admitted``: a manifest that cannot be read further says nothing
        against the items already read from it, which still go.
        """
        if self.summary.halted is None and self.summary.interrupted is None:
            self.summary.halted = reason
        self._stopping = True
        self.waiter.stop()  # items waiting stay accepted: --resume --wait goes on waiting
        if not send_admitted:
            self._close_gate()

    def stop(self, signal_name: str = "SIGINT") -> None:
        """The graceful stop: no new request leaves; those on the wire get ``grace`` seconds.

        Items whose request has not left (waiting for a slot, for the limiter,
        or to retry) are recorded ``interrupted`` at once; items still on the
        wire after the grace period are cancelled and recorded ``interrupted``
        too. Items never started get no record, so a resumed run does them.
        ``signal_name`` is what stopped the batch (:attr:`BatchSummary.interrupted`).
        Call it from the event loop's thread (a signal handler installed with
        ``loop.add_signal_handler`` is); from Python, the ``stop`` event of
        :meth:`records` does it.
        """
        if self.summary.interrupted is None:
            self.summary.interrupted = signal_name
        self._stopping = True
        self.waiter.stop()  # items waiting stay accepted: --resume --wait goes on waiting
        self._close_gate()
        if self._cancel_timer is None:
            loop = asyncio.get_running_loop()
            self._cancel_timer = loop.call_later(self.options.grace, self._cancel_in_flight)

    def _close_gate(self) -> None:
        """No request leaves from now on; items whose request has not left end at once."""
        self.gate.closed = True
        for task in list(self._working):
            if task not in self.gate.on_wire and task is not asyncio.current_task():
                self._unsent.add(task)
                self._grace_cancelled.add(task)
                task.cancel()

    def _cancel_in_flight(self) -> None:
        for task in list(self._working):
            self._grace_cancelled.add(task)
            task.cancel()

    def abandon(self) -> None:
        """Record every item still in flight as ``interrupted`` and fsync the report, now.

        The last resort after :meth:`stop`, for a process about to exit while
        some request ignores its cancellation (an HTTP library stuck on a
        stalled connection): the report ends consistent, and a resumed run
        does those items again. Nothing is cancelled; the batch must not go
        on after this.
        """
        clock = self.client.clock
        working, self._working = self._working, {}
        info = ErrorInfo("Interrupted", None, f"abandoned after {self.summary.interrupted}")
        for item, started in working.values():
            self._emit(_record(item, _Ending("interrupted", error=info), clock.now() - started))
        self._sync()

    def _judge(self, ending: _Ending) -> None:
        """Decide from an item's ending whether the batch must halt."""
        error = ending.error
        if isinstance(error, FwprepError) and error.halts:
            refused = isinstance(error, AuthenticationError | PermissionDeniedError)
            self.halt(f"the API refused the key: {error}" if refused else str(error))
        limit = self.options.max_failures
        if ending.status == "failed" and limit is not None:
            failed = self.summary.counts["failed"]
            if failed >= limit:
                self.halt(f"{failed} items failed (max_failures={limit})")

    # -- records ------------------------------------------------------------------

    def _report_failed(self, exc: ReportError) -> None:
        self.report = None
        self._report_error = exc
        self.halt(str(exc))

    def _emit(self, record: Record, *, waited: bool = False) -> Record:
        """Write a record and count it (``waited``: it ends a wait); it decides nothing."""
        if self.report is not None:
            try:
                self.report.write(record)
            except ReportError as exc:
                self._report_failed(exc)
        if self._report_error is not None and record.status != "started":
            # Not in the report, so not claimed: it counts as interrupted, and a
            # resumed run does it again.
            record = attrs.evolve(
                record, status="interrupted", error=ErrorInfo.of(self._report_error)
            )
        if record.status == "started":
            return record
        self.summary.add(record, waited=waited)
        if self.on_record is not None:
            self.on_record(record)
        return record

    # -- the pipeline ----------------------------------------------------------------

    def skip_done(self, key: str) -> bool:
        """Whether a manifest row whose key is ``key`` needs nothing more (``--resume``).

        A manifest reader asks this before validating a row into an item, so
        that resuming a large batch does not rebuild every item it finished.
        """
        verdict = self.admission.admit_done(key)
        if verdict is Admitted.DONE:
            self.summary.already_done += 1
        return verdict is not None

    async def _admitted(
        self, entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    ) -> AsyncIterator[tuple[Admitted, ManifestEntry]]:
        try:
            async for entry in aiter_entries(entries):
                if self._stopping:
                    return
                verdict = self.admission.admit(entry)
                if verdict is Admitted.DONE:
                    self.summary.already_done += 1
                elif verdict is not Admitted.ELSEWHERE:
                    yield verdict, entry
        except ManifestError as exc:
            # Stop reading; what is in flight still finishes and is recorded.
            self.halt(str(exc), send_admitted=True)

    async def _work(self, admitted: tuple[Admitted, ManifestEntry]) -> Record | None:
        """Run one entry to its final record, or (accepted, to wait on) to ``None``."""
        verdict, entry = admitted
        if isinstance(entry, InvalidRow):
            return self._emit(_row_record(entry))
        if verdict is Admitted.DUPLICATE:
            return self._emit(_record(entry, _Ending("duplicate")))
        if verdict is Admitted.WAIT:
            self.summary.waiting += 1
            assert self._resumed is not None  # only a resumed report makes a WAIT verdict
            self.waiter.add(entry, waited=self._resumed.waited(entry.key))
            if self.on_record is not None:  # shown as waiting; the report has it already
                self.on_record(_record(entry, _Ending("accepted")))
            return None
        if self._stopping:
            reason = "not sent: " + (self.summary.halted or "the batch was stopped")
            error = ErrorInfo("NotStarted", None, reason)
            return self._emit(_record(entry, _Ending("interrupted", error=error)))
        self._emit(_record(entry, _Ending("started")))
        clock = self.client.clock
        started = clock.now()
        task = asyncio.current_task()
        assert task is not None
        self._working[task] = (entry, started)
        gate = GATE.set(self.gate)
        try:
            ending = await self._attempt(entry)
        except asyncio.CancelledError:
            graceful = task in self._grace_cancelled
            self._grace_cancelled.discard(task)
            unsent = task in self._unsent
            self._unsent.discard(task)
            if not graceful or task.uncancel() > 0:
                # Cancelled from outside (a timeout, Ctrl-C in the host, the consumer
                # closing the batch): the item still gets its final record.
                info = ErrorInfo("Interrupted", None, "cancelled while in flight")
                self._emit(
                    _record(entry, _Ending("interrupted", error=info), clock.now() - started)
                )
                raise
            ending = self._stopped_ending(sent=not unsent)
        finally:
            GATE.reset(gate)
            self._working.pop(task, None)
        record = self._emit(_record(entry, ending, clock.now() - started))
        if ending.status == "accepted":
            self._prepare_elapsed[entry.key] = clock.now() - started
            self.waiter.add(entry)
            return None
        self._judge(ending)
        return record

    def _stopped_ending(self, *, sent: bool) -> _Ending:
        """An item ended by a stop or a halt: after a request of its left (``sent``), or before."""
        why = self.summary.interrupted or self.summary.halted or "the batch was stopped"
        if sent:
            return _Ending("interrupted", error=ErrorInfo("Interrupted", None, f"stopped by {why}"))
        return _Ending("interrupted", error=ErrorInfo("NotStarted", None, f"not sent: {why}"))

    def _waited(self, outcome: WaitOutcome) -> Record:
        """The final record of an item whose wait ended."""
        item = outcome.item
        elapsed = self._prepare_elapsed.pop(item.key, 0.0) + outcome.waited
        if outcome.error is None:
            ending = _Ending("ok")
        else:
            status = outcome.error.status if isinstance(outcome.error, ApiError) else None
            ending = _Ending("failed", http_status=status, error=outcome.error)
        record = self._emit(_record(item, ending, elapsed), waited=True)
        self._judge(ending)
        return record

    async def _attempt(self, item: PrepareItem) -> _Ending:
        client = self.client
        options = self.options
        try:
            checking = options.check and item.precision is not None
            if checking and await self.state_check.has_precision(item):
                return _Ending("skipped", attempts=0)
            outcome = await client.prepare(item)
            ending = _Ending("ok", attempts=outcome.attempts, http_status=outcome.http_status)
            if outcome.error is not None:
                return attrs.evolve(ending, status="failed", error=outcome.error)
            if options.wait and item.precision is not None:
                return attrs.evolve(ending, status="accepted")  # the waiter takes it from here
            return ending
        except RequestNotSent as exc:  # the batch stopped before this request could leave
            return self._stopped_ending(sent=exc.retry)
        except FwprepError as exc:  # reading the model for --check failed
            status = exc.status if isinstance(exc, ApiError) else None
            return _Ending("failed", attempts=0, http_status=status, error=exc)
        except Exception as exc:  # a bug must not take the other items down
            return _Ending("failed", error=exc)

    async def records(
        self,
        entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry],
        *,
        stop: asyncio.Event | None = None,
    ) -> AsyncGenerator[Record, None]:
        """Run the batch; yield each final record as it is written.

        Setting ``stop`` stops the batch gracefully, as :meth:`stop` does.
        Closing the generator early cancels the items in flight; each still
        gets its ``interrupted`` record.
        """
        clock = self.client.clock
        started = clock.now()
        syncer = asyncio.ensure_future(self._sync_every_second(stop))
        try:
            merged = merge(self._sending(entries), self._waiting())
            async with contextlib.aclosing(merged) as records:
                async for record in records:
                    yield record
        finally:
            await self.state_check.close()
            self.summary.reads = self.waiter.reads + self.state_check.reads
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            if self._cancel_timer is not None:
                self._cancel_timer.cancel()
            self.summary.elapsed = clock.now() - started
            self._sync()

    async def _sending(
        self, entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    ) -> AsyncIterator[Record]:
        """The items' work, a bounded number at a time: final records (accepted ones wait)."""
        try:
            pool = bounded_map(self._admitted(entries), self._work, self.concurrency)
            async with contextlib.aclosing(pool) as records:
                async for record in records:
                    if record is not None:
                        yield record
        finally:
            self.waiter.close()  # nothing more to wait on will come

    async def _waiting(self) -> AsyncIterator[Record]:
        """The final records of the items waited on, as their precisions show (or fail)."""
        async with contextlib.aclosing(self.waiter.outcomes()) as outcomes:
            async for outcome in outcomes:
                yield self._waited(outcome)

    async def run(
        self,
        entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry],
        *,
        stop: asyncio.Event | None = None,
    ) -> BatchSummary:
        """Run the batch to the end and return its :class:`BatchSummary`."""
        async with contextlib.aclosing(self.records(entries, stop=stop)) as records:
            async for _ in records:
                pass
        return self.summary

    def _sync(self) -> None:
        if self.report is not None:
            try:
                self.report.sync()
            except ReportError as exc:
                self._report_failed(exc)

    async def _sync_every_second(self, stop: asyncio.Event | None) -> None:
        """Fsync the report each second; stop the batch when ``stop`` is set."""
        while True:
            if stop is None:
                await asyncio.sleep(1.0)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await stop.wait()
                if stop.is_set():
                    if not self._stopping:
                        self.stop(STOP_EVENT)
                    stop = None  # handled: from now on, only the fsyncs
            self._sync()
