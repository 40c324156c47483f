"""Putting a batch together: manifests or items, the report, resume, the client and the runner.

One composition root, shared by :func:`fwprep.run_batch`, :func:`fwprep.iter_batch`
and ``fwprep batch``, so the three cannot drift apart.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import attrs

from fwprep._checks import coerce_item
from fwprep.batch.admit import plan_batch
from fwprep.batch.journal import ReportIndex, index_report
from fwprep.batch.manifest import InvalidRow, Manifest, ManifestEntry
from fwprep.batch.report import Record, ReportWriter
from fwprep.batch.runner import BatchOptions, BatchRunner
from fwprep.client import FireworksClient, ItemLike
from fwprep.errors import ConfigError, InputError
from fwprep.precision import Precision

__all__ = [
    "Batch",
    "PathLike",
    "chain_entries",
    "default_report_path",
    "open_batch",
    "open_manifests",
]

PathLike = str | os.PathLike[str]

ITEMS_SOURCE = "items"
"""The ``source`` of items handed to a batch from Python rather than read from a manifest."""


def default_report_path(manifests: Sequence[PathLike]) -> Path:
    """``<first manifest>.report.jsonl`` beside it; ``stdin.report.jsonl`` for ``-``."""
    if not manifests or str(manifests[0]) == "-":
        return Path("stdin.report.jsonl")
    return Path(f"{manifests[0]}.report.jsonl")


@contextlib.contextmanager
def open_manifests(
    paths: Sequence[PathLike],
    fmt: str | None = None,
    default_account: str | None = None,
    precisions: Sequence[Precision | str] = (),
) -> Iterator[list[Manifest]]:
    """Open and check every manifest before any is read, so a bad one stops the batch early.

    ``precisions``: for the rows that name none, one item per precision
    (``fwprep batch -p``); see :class:`~fwprep.batch.manifest.Manifest`.

    Raises:
        ManifestError: for the first manifest that cannot be used.
    """
    opened: list[Manifest] = []
    parsed = tuple(dict.fromkeys(Precision.parse(p) for p in precisions))
    try:
        for path in paths:
            opened.append(Manifest.open(str(path), fmt, default_account, parsed))
        yield opened
    finally:
        for manifest in opened:
            manifest.close()


def chain_entries(manifests: Iterable[Manifest]) -> Iterator[ManifestEntry]:
    """Every entry of every manifest, in order."""
    for manifest in manifests:
        yield from manifest.entries()


def _entry(raw: object, index: int, account_id: str | None) -> ManifestEntry:
    try:
        item = coerce_item(raw, account_id)
    except InputError as exc:
        return InvalidRow(ITEMS_SOURCE, index, str(exc))
    if item.source is not None and item.line is not None:
        return item  # it says where it came from already
    return attrs.evolve(item, source=item.source or ITEMS_SOURCE, line=item.line or index)


def entries_from_items(
    items: Iterable[ItemLike] | AsyncIterable[ItemLike], account_id: str | None
) -> Iterator[ManifestEntry] | AsyncIterator[ManifestEntry]:
    """Items handed to a batch, as manifest entries: a malformed one is an invalid row.

    Its source is ``items`` and its line is its position (1-based), so a bad
    pair is recorded ``invalid`` as ``items:41: unknown precision 'fp9'...``,
    and the batch goes on, like a bad manifest row.
    """
    if isinstance(items, AsyncIterable):
        return _async_entries(items, account_id)
    return (_entry(raw, i, account_id) for i, raw in enumerate(items, start=1))


async def _async_entries(
    items: AsyncIterable[ItemLike], account_id: str | None
) -> AsyncIterator[ManifestEntry]:
    index = 0
    async for raw in items:
        index += 1
        yield _entry(raw, index, account_id)


@attrs.define
class Batch:
    """A batch ready to run: its runner, the entries to feed it, and what resume found.

    ``resumed`` is the report as read for ``resume`` (``None`` without it):
    the runner skips the items it has as done, and waits on those it has as
    accepted (with ``wait``) without preparing them again.
    """

    runner: BatchRunner
    entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    resumed: ReportIndex | None
    report_path: Path | None
    manifests: list[Manifest] = attrs.field(factory=list)


def as_paths(manifests: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One path or several, as a list."""
    return [manifests] if isinstance(manifests, str | os.PathLike) else list(manifests)


@contextlib.asynccontextmanager
async def open_batch(
    manifests: PathLike | Sequence[PathLike] = (),
    *,
    items: Iterable[ItemLike] | AsyncIterable[ItemLike] | None = None,
    client: FireworksClient | None = None,
    connect: Callable[[], AbstractAsyncContextManager[FireworksClient]] | None = None,
    account_id: str | None = None,
    report: PathLike | None = None,
    resume: bool = False,
    format: str | None = None,
    precisions: Sequence[Precision | str] = (),
    options: BatchOptions | None = None,
    on_record: Callable[[Record], None] | None = None,
) -> AsyncIterator[Batch]:
    """Open the manifests, read the report for resume, open it for writing, connect, build.

    The manifests are opened (and checked) first, so a missing file fails
    before anything else. ``client`` is used as given; without it, the client
    comes from ``connect`` (default: :class:`~fwprep.FireworksClient` from the
    environment) and is closed on exit, with the report and the manifests.
    """
    paths = as_paths(manifests)
    report_path = Path(report) if report is not None else None
    if resume and report_path is None and not paths:
        raise ConfigError("resume needs a report to resume from: pass report=")
    if report_path is None and paths:
        report_path = default_report_path(paths)
    account = client.account_id if client is not None else account_id
    account = account or os.environ.get("FIREWORKS_ACCOUNT_ID") or None
    async with contextlib.AsyncExitStack() as stack:
        opened = stack.enter_context(open_manifests(paths, format, account, precisions))
        resumed = None
        if resume and report_path is not None and report_path.exists():
            resumed = index_report([report_path])
        writer = ReportWriter(report_path) if report_path is not None else None
        if writer is not None:
            stack.callback(writer.close)
        if client is None:
            client = await stack.enter_async_context((connect or FireworksClient)())
        expected = None
        options = options or BatchOptions()
        if options.check:
            expected = await _count_items(
                items,
                paths,
                format=format,
                account=account,
                precisions=precisions,
                options=options,
                resumed=resumed,
            )
        runner = BatchRunner(
            client, options, report=writer, on_record=on_record, expected=expected, resumed=resumed
        )
        if resumed is not None:
            for manifest in opened:
                manifest.skip = runner.skip_done  # done rows pass unvalidated
        entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry] = (
            entries_from_items(items, client.account_id)
            if items is not None
            else chain_entries(opened)
        )
        yield Batch(runner, entries, resumed, report_path, opened)


async def _count_items(
    items: object,
    paths: Sequence[PathLike],
    *,
    format: str | None,
    account: str | None,
    precisions: Sequence[Precision | str],
    options: BatchOptions,
    resumed: ReportIndex | None,
) -> int | None:
    """How many items a batch will run, where that can be known before it starts.

    A list of items has a length and manifest files can be read twice (a
    pass that only counts); standard input and other iterables cannot.
    """
    if items is not None:
        return len(items) if isinstance(items, Sized) else None
    if not paths or any(str(path) == "-" for path in paths):
        return None
    with open_manifests(paths, format, account, precisions) as manifests:
        plan = await plan_batch(
            chain_entries(manifests), shard=options.shard, resumed=resumed, wait=options.wait
        )
    return plan.to_send
