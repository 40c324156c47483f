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

import contextlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path

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
    RecordStatus,
    ReportContents,
    ReportError,
    ReportWriter,
    read_report,
)
from fwprep.batch.runner import BatchPlan, BatchRunner, BatchSummary, Shard
from fwprep.client import FireworksClient, ItemLike

__all__ = [
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
    "read_report",
    "run_batch",
]

PathLike = str | os.PathLike[str]


def default_report_path(manifests: Sequence[PathLike]) -> Path:
    """``<first manifest>.report.jsonl`` beside it; ``stdin.report.jsonl`` for ``-``."""
    if not manifests or str(manifests[0]) == "-":
        return Path("stdin.report.jsonl")
    return Path(f"{manifests[0]}.report.jsonl")


@contextlib.contextmanager
def open_manifests(
    paths: Sequence[PathLike], fmt: str | None = None, default_account: str | None = None
) -> Iterator[list[Manifest]]:
    """Open and check every manifest before any is read, so a bad one stops the batch early.

    Raises:
        ManifestError: for the first manifest that cannot be used.
    """
    opened: list[Manifest] = []
    try:
        for path in paths:
            opened.append(Manifest.open(str(path), fmt, default_account))
        yield opened
    finally:
        for manifest in opened:
            manifest.close()


def chain_entries(manifests: Iterable[Manifest]) -> Iterator[ManifestEntry]:
    """Every entry of every manifest, in order."""
    for manifest in manifests:
        yield from manifest.entries()


@contextlib.asynccontextmanager
async def _session(
    manifests: PathLike | Sequence[PathLike],
    items: Iterable[ItemLike] | AsyncIterable[ItemLike] | None,
    client: FireworksClient | None,
    report: PathLike | None,
    resume: bool,
    fmt: str | None,
    options: dict[str, object],
) -> AsyncIterator[tuple[BatchRunner, Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]]]:
    paths: list[PathLike] = (
        [manifests] if isinstance(manifests, str | os.PathLike) else list(manifests)
    )
    report_path = Path(report) if report is not None else None
    if report_path is None and paths:
        report_path = default_report_path(paths)
    done: frozenset[str] = frozenset()
    if resume and report_path is not None and report_path.exists():
        done = read_report([report_path]).done_keys()
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(FireworksClient())
        opened = stack.enter_context(open_manifests(paths, fmt, client.account_id))
        writer = ReportWriter(report_path) if report_path is not None else None
        if writer is not None:
            stack.callback(writer.close)
        runner = BatchRunner(client, report=writer, done=done, **options)  # type: ignore[arg-type]
        entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry] = (
            client.items_from(items) if items is not None else chain_entries(opened)
        )
        yield runner, entries


async def iter_batch(
    manifests: PathLike | Sequence[PathLike] = (),
    *,
    items: Iterable[ItemLike] | AsyncIterable[ItemLike] | None = None,
    client: FireworksClient | None = None,
    report: PathLike | None = None,
    resume: bool = False,
    format: str | None = None,
    **options: object,
) -> AsyncIterator[Record]:
    """Run a batch and yield each item's final :class:`Record` as it is written.

    Give ``manifests`` (paths, ``-`` for standard input) or ``items``
    (:class:`~fwprep.PrepareItem` or ``(model, precision)`` pairs). The report
    defaults to ``<first manifest>.report.jsonl``; with ``items`` only, no
    report is written unless ``report`` is given. ``resume=True`` skips the
    keys the report says are done. ``client`` defaults to a
    :class:`~fwprep.FireworksClient` configured from the environment; other
    keyword ``options`` go to :class:`BatchRunner` (``check``, ``wait``,
    ``max_failures``, ``shard``, ``concurrency``, ...).

    Raises:
        ManifestError: a manifest cannot be used (before anything is sent).
        ReportError: the report cannot be written (before anything is sent).
        ConfigError: the client cannot be configured.
    """
    async with (
        _session(manifests, items, client, report, resume, format, options) as (
            runner,
            entries,
        ),
        contextlib.aclosing(runner.records(entries)) as records,
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
    **options: object,
) -> BatchSummary:
    """Run a batch to the end and return its :class:`BatchSummary`.

    Takes the same arguments as :func:`iter_batch`. Individual failures are
    in the summary and the report, never raised.
    """
    async with _session(manifests, items, client, report, resume, format, options) as (
        runner,
        entries,
    ):
        return await runner.run(entries)
