"""Batches: read manifests, prepare every item, and keep a report of each one.

From an async application::

    import fwprep

    summary = await fwprep.run_batch("models.csv", report="models.report.jsonl", resume=True)
    print(summary.counts["ok"], "prepared;", summary.counts["failed"], "failed")

    async for record in fwprep.iter_batch(items=[("accounts/acme/models/ft-7", "fp8")]):
        print(record.key, record.status)

From a shell: ``fwprep batch models.csv``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence

from fwprep.batch.admit import BatchPlan, Shard, plan_batch
from fwprep.batch.manifest import (
    InvalidRow,
    Manifest,
    ManifestEntry,
    ManifestError,
    ManifestFormat,
)
from fwprep.batch.report import (
    ErrorInfo,
    Record,
    ReportContents,
    ReportError,
    ReportWriter,
    read_report,
)
from fwprep.batch.runner import DEFAULT_GRACE, BatchOptions, BatchRunner
from fwprep.batch.session import (
    PathLike,
    chain_entries,
    default_report_path,
    open_manifests,
)
from fwprep.batch.session import (
    open_batch as _open_batch,
)
from fwprep.batch.status import RecordStatus
from fwprep.batch.summary import BatchSummary
from fwprep.client import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    FireworksClient,
    ItemLike,
)
from fwprep.precision import Precision

__all__ = [
    "BatchOptions",
    "BatchPlan",
    "BatchRunner",
    "BatchSummary",
    "ErrorInfo",
    "InvalidRow",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "ManifestFormat",
    "Record",
    "RecordStatus",
    "ReportContents",
    "ReportError",
    "ReportWriter",
    "Shard",
    "chain_entries",
    "default_report_path",
    "iter_batch",
    "open_manifests",
    "plan_batch",
    "read_report",
    "run_batch",
]


async def iter_batch(
    manifests: PathLike | Sequence[PathLike] = (),
    *,
    items: Iterable[ItemLike] | AsyncIterable[ItemLike] | None = None,
    client: FireworksClient | None = None,
    report: PathLike | None = None,
    resume: bool = False,
    format: str | None = None,
    precisions: Sequence[Precision | str] = (),
    check: bool = False,
    wait: bool = False,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    max_failures: int | None = None,
    shard: Shard | str | None = None,
    concurrency: int | None = None,
    grace: float = DEFAULT_GRACE,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[Record, None]:
    """Run a batch and yield each item's final :class:`Record` as it is written.

    Give ``manifests`` (paths, ``-`` for standard input) or ``items``
    (:class:`~fwprep.PrepareItem` or ``(model, precision)`` pairs), not both.
    The report defaults to ``<first manifest>.report.jsonl`` (with ``shard``
    K/N, ``<first manifest>.shard-K-of-N.report.jsonl``); with ``items``, no
    report is written unless ``report`` is given. A report is appended to only
    when it is a fwprep report or empty, never when it is also a manifest.
    ``resume=True`` skips the keys the report says are done. ``precisions``
    (``["fp8"]``, say) gives the rows and items that name no precision one
    item per precision, as ``fwprep batch -p`` does; those that name one keep
    it. ``client`` defaults to a :class:`~fwprep.FireworksClient` configured
    from the environment. The other arguments are the :class:`BatchOptions`
    (``check``, ``wait``, ``max_failures``, ``shard``, ``concurrency``, ...),
    checked before anything is sent.

    ``stop`` is the graceful stop from Python: when the event is set, no new
    request leaves. Items whose request has not left are recorded
    ``interrupted`` at once; requests on the wire get ``grace`` seconds to
    finish (then they are recorded ``interrupted``). Cancelling the batch, or closing this
    generator early (use ``contextlib.aclosing``), cancels the items in flight
    at once; each still gets its ``interrupted`` record, so the report never
    leaves an item ``started``.

    Raises:
        ManifestError: a manifest cannot be used (before anything is sent).
        ReportError: the report cannot be written, is not a report, or is also
            a manifest (before anything is sent).
        ConfigError: the client cannot be configured, an option is out of
            range, or both or neither of ``manifests`` and ``items`` are given.
        InputError: text where a sequence belongs (``items="..."``,
            ``precisions="fp8"``).
    """
    options = BatchOptions(
        check=check,
        wait=wait,
        wait_timeout=wait_timeout,
        poll_interval=poll_interval,
        max_failures=max_failures,
        shard=shard,
        concurrency=concurrency,
        grace=grace,
    )
    async with (
        _open_batch(
            manifests,
            items=items,
            client=client,
            report=report,
            resume=resume,
            format=format,
            precisions=precisions,
            options=options,
        ) as batch,
        contextlib.aclosing(batch.runner.records(batch.entries, stop=stop)) as records,
    ):
        async for record in records:
            yield record


async def run_batch(
    manifests: PathLike | Sequence[PathLike] = (),
    *,
    items: Iterable[ItemLike] | AsyncIterable[ItemLike] | None = None,
    client: FireworksClient | None = None,
    report: PathLike | None = None,
    resume: bool = False,
    format: str | None = None,
    precisions: Sequence[Precision | str] = (),
    check: bool = False,
    wait: bool = False,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    max_failures: int | None = None,
    shard: Shard | str | None = None,
    concurrency: int | None = None,
    grace: float = DEFAULT_GRACE,
    stop: asyncio.Event | None = None,
) -> BatchSummary:
    """Run a batch to the end and return its :class:`BatchSummary`.

    Takes the same arguments as :func:`iter_batch`. Individual failures are
    in the summary and the report, never raised.
    """
    options = BatchOptions(
        check=check,
        wait=wait,
        wait_timeout=wait_timeout,
        poll_interval=poll_interval,
        max_failures=max_failures,
        shard=shard,
        concurrency=concurrency,
        grace=grace,
    )
    async with _open_batch(
        manifests,
        items=items,
        client=client,
        report=report,
        resume=resume,
        format=format,
        precisions=precisions,
        options=options,
    ) as batch:
        return await batch.runner.run(batch.entries, stop=stop)
