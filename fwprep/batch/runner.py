"""The batch runner: many items, concurrently, each ending in a report record."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
)
from typing import Any

import attrs

from fwprep.batch.manifest import InvalidRow, ManifestEntry, ManifestError
from fwprep.batch.report import (
    FINAL_STATUSES,
    ErrorInfo,
    Record,
    RecordStatus,
    ReportError,
    ReportWriter,
)
from fwprep.client import FireworksClient
from fwprep.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    FwprepError,
    PermissionDeniedError,
)
from fwprep.models import PrepareItem

__all__ = ["BatchPlan", "BatchRunner", "BatchSummary", "Shard"]

_HALTING = (AuthenticationError, PermissionDeniedError)


def _key_hash(key: str) -> int:
    """64 bits of BLAKE2b: the seen-keys set holds these, not the strings (a third the memory)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def _bucket(identity: str, count: int) -> int:
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@attrs.frozen
class Shard:
    """Shard ``index`` of ``count`` (1-based): the items whose key hashes into it.

    The hash is SHA-256 of the item's key, so every machine computes the same
    split: the shards of a manifest never overlap and never miss an item,
    however the manifest is ordered.
    """

    index: int
    count: int

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: need 1 <= K <= N")

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str] | None = None) -> Shard:
        """Read ``K/N`` (1-based) or ``auto``.

        ``auto`` reads a Slurm job array (``SLURM_ARRAY_TASK_ID`` less
        ``SLURM_ARRAY_TASK_MIN``, and ``SLURM_ARRAY_TASK_COUNT``) or a
        Kubernetes Indexed Job (``JOB_COMPLETION_INDEX``, 0-based, with the
        count in ``FWPREP_SHARD_COUNT``).

        Raises:
            ConfigError: for malformed text or missing variables.
        """
        env = os.environ if environ is None else environ
        if text.strip().lower() == "auto":
            if "SLURM_ARRAY_TASK_ID" in env:
                try:
                    index = int(env["SLURM_ARRAY_TASK_ID"]) - int(
                        env.get("SLURM_ARRAY_TASK_MIN", "0")
                    )
                    count = int(env["SLURM_ARRAY_TASK_COUNT"])
                except (KeyError, ValueError):
                    raise ConfigError(
                        "--shard auto: SLURM_ARRAY_TASK_ID is set, but SLURM_ARRAY_TASK_COUNT "
                        "(and SLURM_ARRAY_TASK_MIN, if set) are not whole numbers"
                    ) from None
                return cls(index + 1, count)
            if "JOB_COMPLETION_INDEX" in env:
                try:
                    index = int(env["JOB_COMPLETION_INDEX"])
                    count = int(env["FWPREP_SHARD_COUNT"])
                except (KeyError, ValueError):
                    raise ConfigError(
                        "--shard auto: JOB_COMPLETION_INDEX is set; set FWPREP_SHARD_COUNT to "
                        "the Job's completions"
                    ) from None
                return cls(index + 1, count)
            raise ConfigError(
                "--shard auto: no Slurm array (SLURM_ARRAY_TASK_ID) or Kubernetes Indexed Job "
                "(JOB_COMPLETION_INDEX) found"
            )
        left, sep, right = text.partition("/")
        try:
            index, count = int(left), int(right)
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected K/N, such as 1/4, or auto") from None
        if not sep:
            raise ConfigError(f"--shard {text!r}: expected K/N, such as 1/4, or auto")
        return cls(index, count)

    def owns(self, identity: str) -> bool:
        """Whether the item (or row) with this identity belongs to this shard."""
        return _bucket(identity, self.count) == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@attrs.define
class BatchSummary:
    """What a batch did, as the CLI prints it at the end.

    Attributes:
        counts: final records written in this run, per status.
        already_done: items skipped because the report says they are done.
        halted: why the batch stopped early (a refused key, too many
            failures, an unreadable manifest or report), if it did.
        interrupted: ``"SIGINT"`` or ``"SIGTERM"`` when a signal stopped it.
        errors: failures per (error type, message).
        requests: HTTP requests sent for prepares, retries included.
        elapsed: seconds from start to end.
        report: the report's path, when there is one.
    """

    counts: Counter[str] = attrs.field(factory=Counter)
    already_done: int = 0
    halted: str | None = None
    interrupted: str | None = None
    errors: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    requests: int = 0
    elapsed: float = 0.0
    report: str | None = None

    @property
    def finished(self) -> int:
        """Items and rows with a final record in this run."""
        return sum(self.counts.values())

    @property
    def exit_code(self) -> int:
        """0 all done; 1 some item failed or was invalid; 3 halted; 130/143 interrupted."""
        if self.interrupted == "SIGINT":
            return 130
        if self.interrupted == "SIGTERM":
            return 143
        if self.halted is not None:
            return 3
        if self.counts["failed"] or self.counts["invalid"] or self.counts["interrupted"]:
            return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the summary."""
        return {
            "counts": {s: self.counts[s] for s in FINAL_STATUSES if self.counts[s]},
            "already_done": self.already_done,
            "halted": self.halted,
            "interrupted": self.interrupted,
            "top_errors": [
                {"type": kind, "message": message, "count": n}
                for (kind, message), n in self.errors.most_common(5)
            ],
            "requests": self.requests,
            "elapsed_s": round(self.elapsed, 3),
            "rate_per_s": round(self.finished / self.elapsed, 1) if self.elapsed > 0 else None,
            "report": self.report,
            "exit_code": self.exit_code,
        }

    def lines(self) -> list[str]:
        """The summary as lines of text."""
        parts = [f"{self.counts[s]} {s}" for s in FINAL_STATUSES if self.counts[s]]
        rate = f" ({self.finished / self.elapsed:.1f}/s)" if self.elapsed > 0 else ""
        head = f"{self.finished} finished in {self.elapsed:.1f} s{rate}"
        out = [head + (": " + ", ".join(parts) if parts else "")]
        if self.already_done:
            out.append(f"{self.already_done} already done according to the report (skipped)")
        for (kind, message), n in self.errors.most_common(5):
            out.append(f"  {n} x {kind}: {message}")
        if self.halted:
            out.append(f"halted: {self.halted}")
        if self.interrupted:
            out.append(f"interrupted by {self.interrupted}; rerun with --resume to finish")
        if self.report:
            out.append(f"report: {self.report}")
        return out


@attrs.define
class BatchPlan:
    """What a batch would do (``--dry-run``): counts, and the rows that are not valid."""

    per_precision: Counter[str] = attrs.field(factory=Counter)
    duplicates: int = 0
    invalid: list[str] = attrs.field(factory=list)
    already_done: int = 0
    read_error: str | None = None

    @property
    def to_send(self) -> int:
        """Items that would be prepared."""
        return sum(self.per_precision.values())


@attrs.frozen
class _Duplicate:
    item: PrepareItem


class BatchRunner:
    """Runs items through a client, writing a record per state change to a report.

    Every item ends with exactly one final record; an exception in one item
    becomes its ``failed`` record and never stops the others. A 401 or 403
    halts the batch (no new item starts), as does reaching
    ``max_failures``. :meth:`stop` is the graceful stop for signals.

    Args:
        client: the :class:`~fwprep.FireworksClient` to send with (``None``
            for a runner that only makes a :meth:`plan`).
        report: where records are written; ``None`` writes nothing.
        done: keys to skip, from an earlier report (``--resume``).
        check: read each model first; a precision it already has is ``skipped``.
        wait: after each prepare, wait until the precision shows on the model.
        wait_timeout: how long each wait may take, in seconds.
        poll_interval: seconds between reads of a model while waiting.
        max_failures: halt after this many failed items.
        shard: run only this :class:`Shard` of the items.
        concurrency: items in progress at once (default: the client's
            ``max_concurrency``).
        grace: seconds items in flight get to finish after :meth:`stop`.
        on_record: called with each final record (progress display).
    """

    def __init__(
        self,
        client: FireworksClient | None,
        *,
        report: ReportWriter | None = None,
        done: frozenset[str] = frozenset(),
        check: bool = False,
        wait: bool = False,
        wait_timeout: float = 1800.0,
        poll_interval: float = 5.0,
        max_failures: int | None = None,
        shard: Shard | None = None,
        concurrency: int | None = None,
        grace: float = 5.0,
        on_record: Callable[[Record], None] | None = None,
    ) -> None:
        self.client = client
        self.report = report
        self._done = {_key_hash(k) for k in done}
        self.check = check
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.poll_interval = poll_interval
        self.max_failures = max_failures
        self.shard = shard
        self.concurrency = concurrency or (client.max_concurrency if client else 1)
        self.grace = grace
        self.on_record = on_record
        self.summary = BatchSummary(report=str(report.path) if report else None)
        self._stopping = False
        self._report_error: ReportError | None = None
        self._working: set[asyncio.Task[Any]] = set()  # tasks inside an item's requests
        self._grace_cancelled: set[asyncio.Task[Any]] = set()
        self._cancel_timer: asyncio.TimerHandle | None = None

    # -- stopping ---------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether the batch has stopped starting new items."""
        return self._stopping

    def halt(self, reason: str) -> None:
        """Start no new item; let the ones in flight finish."""
        if self.summary.halted is None and self.summary.interrupted is None:
            self.summary.halted = reason
        self._stopping = True

    def stop(self, signal_name: str = "SIGINT") -> None:
        """The graceful stop: start no new item, give those in flight ``grace`` seconds.

        Items still in flight after the grace period are cancelled and
        recorded as ``interrupted``. Call it from the event loop's thread (a
        signal handler installed with ``loop.add_signal_handler`` is).
        """
        if self.summary.interrupted is None:
            self.summary.interrupted = signal_name
        self._stopping = True
        if self._cancel_timer is None:
            loop = asyncio.get_running_loop()
            self._cancel_timer = loop.call_later(self.grace, self._cancel_in_flight)

    def _cancel_in_flight(self) -> None:
        for task in list(self._working):
            self._grace_cancelled.add(task)
            task.cancel()

    # -- records ------------------------------------------------------------------

    def _report_failed(self, exc: ReportError) -> None:
        self.report = None
        self._report_error = exc
        self.halt(str(exc))

    def _emit(self, record: Record) -> Record:
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
        summary = self.summary
        summary.counts[record.status] += 1
        if record.attempts:
            summary.requests += record.attempts
        if record.status == "failed" and record.error is not None:
            summary.errors[(record.error.type, record.error.message)] += 1
            if self.max_failures is not None and summary.counts["failed"] >= self.max_failures:
                self.halt(f"{summary.counts['failed']} items failed (--max-failures)")
        if self.on_record is not None:
            self.on_record(record)
        return record

    @staticmethod
    def _record(
        item: PrepareItem,
        status: RecordStatus,
        *,
        attempts: int | None = None,
        elapsed: float | None = None,
        http_status: int | None = None,
        error: BaseException | ErrorInfo | None = None,
    ) -> Record:
        info = ErrorInfo.of(error) if isinstance(error, BaseException) else error
        return Record(
            key=item.key,
            status=status,
            model=item.model.name,
            precision=item.precision.value if item.precision else None,
            source=item.source,
            line=item.line,
            attempts=attempts,
            elapsed_ms=None if elapsed is None else elapsed * 1000.0,
            http_status=http_status,
            error=info,
        )

    # -- the pipeline ----------------------------------------------------------------

    async def _admit(
        self, entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry], plan: bool = False
    ) -> AsyncIterator[ManifestEntry | _Duplicate]:
        seen: set[int] = set()
        try:
            async for entry in _aiter(entries):
                if self._stopping:
                    return
                if isinstance(entry, InvalidRow):
                    if self.shard is None or self.shard.owns(f"{entry.source}:{entry.line}"):
                        yield entry
                    continue
                key = entry.key
                if self.shard is not None and not self.shard.owns(key):
                    continue
                hashed = _key_hash(key)
                if hashed in seen:
                    yield _Duplicate(entry)
                    continue
                seen.add(hashed)
                if hashed in self._done:
                    self.summary.already_done += 1
                    continue
                yield entry
        except ManifestError as exc:
            # Stop reading; what is in flight still finishes and is recorded.
            self.halt(str(exc))

    async def _work(self, entry: ManifestEntry | _Duplicate) -> Record:
        if isinstance(entry, InvalidRow):
            return self._emit(
                Record(
                    key=None,
                    status="invalid",
                    model=entry.model,
                    precision=entry.precision,
                    source=entry.source,
                    line=entry.line,
                    error=ErrorInfo("InvalidRow", None, str(entry)),
                )
            )
        if isinstance(entry, _Duplicate):
            return self._emit(self._record(entry.item, "duplicate"))
        item = entry
        if self._stopping:
            return self._emit(
                self._record(
                    item,
                    "interrupted",
                    error=ErrorInfo(
                        "NotStarted",
                        None,
                        "not sent: " + (self.summary.halted or "the batch was stopped"),
                    ),
                )
            )
        self._emit(self._record(item, "started"))
        started = time.monotonic()
        task = asyncio.current_task()
        assert task is not None
        self._working.add(task)
        try:
            return self._emit(await self._attempt(item, started))
        except asyncio.CancelledError:
            if task not in self._grace_cancelled:
                raise  # not the grace period's cancellation: pass it on
            self._grace_cancelled.discard(task)
            if task.uncancel() > 0:
                raise  # cancelled from elsewhere as well
        finally:
            self._working.discard(task)
        return self._emit(
            self._record(
                item,
                "interrupted",
                elapsed=time.monotonic() - started,
                error=ErrorInfo("Interrupted", None, f"stopped by {self.summary.interrupted}"),
            )
        )

    async def _attempt(self, item: PrepareItem, started: float) -> Record:
        client = self.client
        if client is None:
            raise ConfigError("a BatchRunner without a client can only plan")
        try:
            if self.check and item.precision is not None:
                model = await client.get_model(item.model)
                if model.has_precision(item.precision):
                    return self._record(
                        item, "skipped", attempts=0, elapsed=time.monotonic() - started
                    )
            outcome = await client.prepare(item)
            if outcome.error is not None:
                if isinstance(outcome.error, _HALTING):
                    self.halt(f"the API refused the key: {outcome.error}")
                return self._record(
                    item,
                    "failed",
                    attempts=outcome.attempts,
                    elapsed=time.monotonic() - started,
                    http_status=outcome.http_status,
                    error=outcome.error,
                )
            if self.wait and item.precision is not None:
                try:
                    await client.wait_until_prepared(
                        item.model,
                        item.precision,
                        timeout=self.wait_timeout,
                        poll_interval=self.poll_interval,
                    )
                except FwprepError as exc:
                    return self._record(
                        item,
                        "failed",
                        attempts=outcome.attempts,
                        elapsed=time.monotonic() - started,
                        http_status=outcome.http_status,
                        error=exc,
                    )
            return self._record(
                item,
                "ok",
                attempts=outcome.attempts,
                elapsed=time.monotonic() - started,
                http_status=outcome.http_status,
            )
        except FwprepError as exc:  # reading the model for --check failed
            if isinstance(exc, _HALTING):
                self.halt(f"the API refused the key: {exc}")
            return self._record(
                item,
                "failed",
                attempts=0,
                elapsed=time.monotonic() - started,
                http_status=exc.status if isinstance(exc, ApiError) else None,
                error=exc,
            )
        except Exception as exc:  # a bug must not take the other items down
            return self._record(item, "failed", elapsed=time.monotonic() - started, error=exc)

    async def records(
        self, entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    ) -> AsyncGenerator[Record, None]:
        """Run the batch; yield each final record as it is written."""
        from fwprep._pool import bounded_map

        started = time.monotonic()
        syncer = asyncio.ensure_future(self._sync_every_second())
        try:
            pool = bounded_map(self._admit(entries), self._work, self.concurrency)
            async with contextlib.aclosing(pool) as records:
                async for record in records:
                    yield record
        finally:
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            if self._cancel_timer is not None:
                self._cancel_timer.cancel()
            self.summary.elapsed = time.monotonic() - started
            if self.report is not None:
                try:
                    self.report.sync()
                except ReportError as exc:
                    self._report_failed(exc)

    async def run(
        self, entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    ) -> BatchSummary:
        """Run the batch to the end and return its :class:`BatchSummary`."""
        async for _ in self.records(entries):
            pass
        return self.summary

    async def plan(
        self, entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    ) -> BatchPlan:
        """What :meth:`run` would do, without sending anything or writing a report."""
        plan = BatchPlan()
        async for entry in self._admit(entries):
            if isinstance(entry, InvalidRow):
                plan.invalid.append(str(entry))
            elif isinstance(entry, _Duplicate):
                plan.duplicates += 1
            else:
                precision = entry.precision.value if entry.precision else "(API default)"
                plan.per_precision[precision] += 1
        plan.already_done = self.summary.already_done
        plan.read_error = self.summary.halted
        return plan

    async def _sync_every_second(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.report is not None:
                try:
                    self.report.sync()
                except ReportError as exc:
                    self._report_failed(exc)


async def _aiter(
    entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry],
) -> AsyncIterator[ManifestEntry]:
    if isinstance(entries, AsyncIterable):
        async for entry in entries:
            yield entry
    else:
        for entry in entries:
            yield entry
