"""Putting a batch together: manifests or items, the report, resume, the client and the runner.

One composition root, shared by :func:`fwprep.run_batch`, :func:`fwprep.iter_batch`
and ``fwprep batch``, so the three cannot drift apart.
"""

from __future__ import annotations

import contextlib
import os
import sys
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

from fwprep._checks import check_items, check_texts, coerce_item
from fwprep.batch.admit import BatchPlan, Shard, plan_batch
from fwprep.batch.journal import ReportIndex, index_report
from fwprep.batch.manifest import InvalidRow, Manifest, ManifestEntry, ManifestError
from fwprep.batch.report import Record, ReportError, ReportWriter, is_report
from fwprep.batch.runner import BatchOptions, BatchRunner
from fwprep.client import FireworksClient, ItemLike
from fwprep.errors import ConfigError, InputError
from fwprep.precision import Precision

__all__ = [
    "Batch",
    "PathLike",
    "chain_entries",
    "check_report",
    "default_report_path",
    "open_batch",
    "open_manifests",
    "plan_manifests",
    "resumed_from",
]

PathLike = str | os.PathLike[str]

ITEMS_SOURCE = "items"
"""The ``source`` of items handed to a batch from Python rather than read from a manifest."""


def default_report_path(manifests: Sequence[PathLike], shard: Shard | None = None) -> Path:
    """``<first manifest>.report.jsonl`` beside it; ``stdin.report.jsonl`` for ``-``.

    A shard of several writes its own: ``models.csv.shard-2-of-8.report.jsonl``,
    so shards started together never contend for one report, and
    ``fwprep report 'models.csv.shard-*.report.jsonl'`` merges them.
    """
    base = "stdin" if not manifests or str(manifests[0]) == "-" else str(manifests[0])
    if shard is not None and shard.count > 1:
        base += f".shard-{shard.index}-of-{shard.count}"
    return Path(f"{base}.report.jsonl")


def _identity(path: PathLike) -> tuple[int, int] | None:
    """The file's (device, inode), standard input's for ``-``; ``None`` if there is none."""
    try:
        info = os.fstat(sys.stdin.fileno()) if str(path) == "-" else os.stat(path)
    except (OSError, ValueError, AttributeError):  # no such file; stdin closed or replaced
        return None
    return (info.st_dev, info.st_ino)


def check_report(report: PathLike, manifests: Sequence[PathLike]) -> None:
    """Refuse a report that would read back as a manifest or spoil a file that is not one.

    A report is appended to only when it is a fwprep report or empty (or new),
    and never when it is also one of the manifests (however it is spelled: a
    relative path, a symlink, a glob's match, standard input redirected from
    it), which would read every record back as a row and grow without end.

    Raises:
        ReportError: naming both paths, before anything is sent.
    """
    target = _identity(report)
    if target is None:
        return  # a new file: nothing to spoil
    for path in manifests:
        if _identity(path) == target:
            shown = "standard input" if str(path) == "-" else str(path)
            raise ReportError(
                f"the report {report} is also a manifest ({shown}): records would be read "
                "back as rows; name another report (--report PATH)"
            )
    try:
        verdict = is_report(report)
    except OSError as exc:
        raise ReportError(f"cannot read the report {report}: {exc.strerror or exc}") from None
    if verdict is False:
        raise ReportError(
            f"{report} exists and is not a fwprep report (its first line is no report "
            "record); name a new file (--report PATH), or move it away"
        )


def _check_not_report(path: PathLike) -> None:
    """Refuse a manifest that is a fwprep report (a glob such as ``models*`` catches them)."""
    if str(path) == "-" or not os.path.isfile(path):
        return
    try:
        verdict = is_report(path)
    except OSError:
        return  # Manifest.open says why it cannot be read
    if verdict:
        raise ManifestError(
            f"{path}:1: a fwprep report, not a manifest; read it with `fwprep report {path}`"
        )


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
    parsed = _precisions(precisions)
    try:
        for path in paths:
            _check_not_report(path)
            opened.append(Manifest.open(str(path), fmt, default_account, parsed))
        yield opened
    finally:
        for manifest in opened:
            manifest.close()


def chain_entries(manifests: Iterable[Manifest]) -> Iterator[ManifestEntry]:
    """Every entry of every manifest, in order."""
    for manifest in manifests:
        yield from manifest.entries()


def _entries(
    raw: object, index: int, account_id: str | None, precisions: tuple[Precision, ...]
) -> Iterator[ManifestEntry]:
    """One handed item as entries: one per precision in ``precisions`` if it names none."""
    try:
        item = coerce_item(raw, account_id)
    except InputError as exc:
        yield InvalidRow(ITEMS_SOURCE, index, str(exc))
        return
    if item.source is None or item.line is None:  # else it says where it came from already
        item = attrs.evolve(item, source=item.source or ITEMS_SOURCE, line=item.line or index)
    if item.precision is not None or not precisions:
        yield item
        return
    for precision in precisions:
        yield attrs.evolve(item, precision=precision)


def entries_from_items(
    items: Iterable[ItemLike] | AsyncIterable[ItemLike],
    account_id: str | None,
    precisions: Sequence[Precision | str] = (),
) -> Iterator[ManifestEntry] | AsyncIterator[ManifestEntry]:
    """Items handed to a batch, as manifest entries: a malformed one is an invalid row.

    Its source is ``items`` and its line is its position (1-based), so a bad
    pair is recorded ``invalid`` as ``items:41: unknown precision 'fp9'...``,
    and the batch goes on, like a bad manifest row. An item that names no
    precision takes each of ``precisions``, as a manifest row does.
    """
    parsed = _precisions(precisions)
    if isinstance(items, AsyncIterable):
        return _async_entries(items, account_id, parsed)
    return (
        entry
        for i, raw in enumerate(items, start=1)
        for entry in _entries(raw, i, account_id, parsed)
    )


async def _async_entries(
    items: AsyncIterable[ItemLike], account_id: str | None, precisions: tuple[Precision, ...]
) -> AsyncIterator[ManifestEntry]:
    index = 0
    async for raw in items:
        index += 1
        for entry in _entries(raw, index, account_id, precisions):
            yield entry


def _precisions(precisions: Sequence[Precision | str]) -> tuple[Precision, ...]:
    """The precisions for rows that name none, parsed, each once, in order given."""
    check_texts(precisions, "precisions", "['fp8'] or ['fp8', 'fp4']")
    return tuple(dict.fromkeys(Precision.parse(p) for p in precisions))


@attrs.define
class Batch:
    """A batch ready to run: its runner, the entries to feed it, and what resume found.

    ``resumed`` is the report as read for ``resume`` (``None`` without it):
    the runner skips the items it has as done, and waits on those it has as
    accepted (with ``wait``) without preparing them again. ``plan`` is what
    the batch will do, made once before it starts (with ``check``, or when
    asked for, and only for manifests that can be read twice).
    """

    runner: BatchRunner
    entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry]
    resumed: ReportIndex | None
    report_path: Path | None
    manifests: list[Manifest] = attrs.field(factory=list)
    plan: BatchPlan | None = None


def resumed_from(report: Path) -> ReportIndex | None:
    """The report as ``resume`` reads it; ``None`` when it does not exist yet (a first run)."""
    return index_report([report]) if report.exists() else None


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
    plan: bool = False,
) -> AsyncIterator[Batch]:
    """Check the arguments, open the manifests, read the report for resume, connect, build.

    Give ``manifests`` or ``items``, not both. The arguments are checked and
    the manifests opened first, so a missing file or a report that is also a
    manifest fails before anything else; the report is opened for writing
    (created, if new) only once the client is connected, so a configuration
    error leaves no empty report behind. ``client`` is used as given;
    without it, the client comes from ``connect`` (default:
    :class:`~fwprep.FireworksClient` from the environment) and is closed on
    exit, with the report and the manifests. With ``plan`` (or
    ``options.check``), the manifests are read once ahead for
    :attr:`Batch.plan`: a progress display's total, ``check``'s count.

    Raises:
        ConfigError: both or neither of ``manifests`` and ``items``; ``format``
            with ``items``; ``resume`` with no report to resume from.
        InputError: text where a sequence is expected (``items``, ``precisions``).
        ManifestError: a manifest cannot be used.
        ReportError: the report cannot be used (see :func:`check_report`).
    """
    paths = as_paths(manifests)
    _check_sources(paths, items, format, precisions)
    options = options or BatchOptions()
    report_path = _report_path(report, paths, options.shard, resume=resume)
    account = client.account_id if client is not None else account_id
    account = account or os.environ.get("FIREWORKS_ACCOUNT_ID") or None
    async with contextlib.AsyncExitStack() as stack:
        opened = stack.enter_context(open_manifests(paths, format, account, precisions))
        resumed = resumed_from(report_path) if resume and report_path is not None else None
        if client is None:
            client = await stack.enter_async_context((connect or FireworksClient)())
        writer = ReportWriter(report_path) if report_path is not None else None
        if writer is not None:
            stack.callback(writer.close)
        planned = None
        if items is None and (options.check or plan):
            planned = await _plan(
                paths,
                format=format,
                account=account,
                precisions=precisions,
                options=options,
                resumed=resumed,
            )
        expected = None
        if options.check and planned is not None:
            expected = planned.to_send
        elif options.check and isinstance(items, Sized):
            expected = len(items)
        runner = BatchRunner(
            client, options, report=writer, on_record=on_record, expected=expected, resumed=resumed
        )
        if resumed is not None:
            for manifest in opened:
                manifest.skip = runner.skip_done  # done rows pass unvalidated
        entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry] = (
            entries_from_items(items, client.account_id, precisions)
            if items is not None
            else chain_entries(opened)
        )
        yield Batch(runner, entries, resumed, report_path, opened, planned)


def _check_sources(
    paths: list[PathLike],
    items: object,
    format: str | None,
    precisions: Sequence[Precision | str],
) -> None:
    """Manifests or items, not both and not neither; ``format`` only with manifests."""
    if items is not None:
        check_items(items)
        if paths:
            raise ConfigError("give manifests or items, not both")
        if format is not None:
            raise ConfigError("format= applies to manifests; items need none")
    elif not paths:
        raise ConfigError("nothing to run: give manifests (paths, '-' for stdin) or items=")
    _precisions(precisions)


def _report_path(
    report: PathLike | None, paths: list[PathLike], shard: Shard | None, *, resume: bool
) -> Path | None:
    """The report to write (the default one beside the first manifest), checked for use."""
    report_path = Path(report) if report is not None else None
    if resume and report_path is None and not paths:
        raise ConfigError("resume needs a report to resume from: pass report=")
    if report_path is None and paths:
        report_path = default_report_path(paths, shard)
    if report_path is not None:
        check_report(report_path, paths)
    return report_path


async def _plan(
    paths: Sequence[PathLike],
    *,
    format: str | None,
    account: str | None,
    precisions: Sequence[Precision | str],
    options: BatchOptions,
    resumed: ReportIndex | None,
) -> BatchPlan | None:
    """What the batch will do, where the manifests can be read twice (files, not stdin)."""
    if not paths or any(str(path) == "-" for path in paths):
        return None
    plan, _ = await plan_manifests(
        paths,
        format=format,
        account=account,
        precisions=precisions,
        shard=options.shard,
        resumed=resumed,
        wait=options.wait,
    )
    return plan


async def plan_manifests(
    paths: Sequence[PathLike],
    *,
    format: str | None,
    account: str | None,
    precisions: Sequence[Precision | str],
    shard: Shard | None,
    resumed: ReportIndex | None,
    wait: bool,
) -> tuple[BatchPlan, list[Manifest]]:
    """Read the manifests once and plan them: the same admission a run makes, over ``resumed``.

    Returns the plan and the manifests as read (closed), whose counts say
    whether ``precisions`` applied to any row.

    Raises:
        ManifestError: a manifest cannot be opened (one that breaks while
            read is the plan's ``read_error``).
    """
    with open_manifests(paths, format, account, precisions) as manifests:
        plan = await plan_batch(
            chain_entries(manifests),
            shard=shard,
            resumed=resumed,
            wait=wait,
            manifests=manifests,
        )
    return plan, manifests
