"""The batch report: an append-only journal of JSON Lines, one record per state change.

Each item gets a ``started`` record before its request leaves, then one final
record: ``ok``, ``failed``, ``skipped`` or ``interrupted`` (with ``wait``, an
``accepted`` record comes between: the prepare was accepted, the precision is
awaited); rows that never run get ``invalid`` or ``duplicate``. A record holds
at least ``key``, ``status``, ``source``, ``line`` and ``ts`` (``model`` and
``precision`` too, when the key does not say them); finished ones add
``attempts``, ``elapsed_ms``, ``http_status`` and, on failure, ``error``
(``type``, ``code``, ``message``)::

    {"key":"accounts/acme/models/ft-7@FP8","status":"started","source":"m.csv","line":2,"ts":...}
    {"key":"accounts/acme/models/ft-7@FP8","status":"ok",...,"attempts":1,"elapsed_ms":80.2}

The journal is the single source of truth for ``--resume``: a key whose last
record is ``ok`` or ``skipped`` is done, one whose last record is ``accepted``
is waited on again. Every record is flushed as it is written and the file is
fsync'd at least once a second and on close, so a crash loses at most the line
being written; a torn last line is ignored when the report is read, and cut
off before a resumed run appends to it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import attrs

from fwprep.batch.status import DONE_STATUSES, ROW_STATUSES, STATUSES, RecordStatus
from fwprep.errors import ApiError, FwprepError

__all__ = [
    "ErrorInfo",
    "Record",
    "RecordStatus",
    "ReportContents",
    "ReportError",
    "ReportWriter",
    "is_report",
    "read_report",
]


class ReportError(FwprepError):
    """The report cannot be opened, written or read."""


@attrs.frozen
class ErrorInfo:
    """Why an item failed: the error's class name, its API code if any, and its message."""

    type: str
    code: str | None
    message: str

    @classmethod
    def of(cls, error: BaseException) -> ErrorInfo:
        """Describe an exception (never including the API key, which errors do not carry)."""
        code = error.code if isinstance(error, ApiError) else None
        return cls(type(error).__name__, code, str(error))


# One encoder for every record (json.dumps with options builds a new one per call). ASCII only:
# a raw U+2028 or U+0085 in a value would split the line for many line readers.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen
class Record:
    """One line of the report: a state change of one item (or one manifest row)."""

    key: str | None
    status: RecordStatus
    model: str | None
    precision: str | None
    source: str | None
    line: int | None
    ts: str = attrs.field(factory=_now)
    attempts: int | None = None
    elapsed_ms: float | None = None
    http_status: int | None = None
    error: ErrorInfo | None = None

    def to_line(self) -> str:
        """The record as one JSON line (no newline).

        Unset optional fields are left out, and so are ``model`` and
        ``precision`` when the key says them (``model@PRECISION``): a report
        of a million items need not repeat them on two million lines.
        :meth:`from_json` puts them back.
        """
        data: dict[str, Any] = {"key": self.key, "status": self.status}
        if (self.model, self.precision) != _from_key(self.key, self.status):
            data["model"] = self.model
            data["precision"] = self.precision
        data["source"] = self.source
        data["line"] = self.line
        data["ts"] = self.ts
        if self.attempts is not None:
            data["attempts"] = self.attempts
        if self.elapsed_ms is not None:
            data["elapsed_ms"] = round(self.elapsed_ms, 1)
        if self.http_status is not None:
            data["http_status"] = self.http_status
        if self.error is not None:
            data["error"] = attrs.asdict(self.error)
        return _ENCODER.encode(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        """Read a record back from a decoded report line.

        Raises:
            ValueError: when required fields are missing or of the wrong type.
        """
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        error = data.get("error")
        info = None
        if isinstance(error, dict):
            info = ErrorInfo(
                str(error.get("type", "")),
                error.get("code") if isinstance(error.get("code"), str) else None,
                str(error.get("message", "")),
            )
        line = data.get("line")
        key = _opt_str(data.get("key"))
        model, precision = _from_key(key, status)
        if "model" in data or "precision" in data:
            model, precision = _opt_str(data.get("model")), _opt_str(data.get("precision"))
        return cls(
            key=key,
            status=status,
            model=model,
            precision=precision,
            source=_opt_str(data.get("source")),
            line=line if isinstance(line, int) and not isinstance(line, bool) else None,
            ts=str(data.get("ts", "")),
            attempts=_opt_int(data.get("attempts")),
            elapsed_ms=_opt_float(data.get("elapsed_ms")),
            http_status=_opt_int(data.get("http_status")),
            error=info,
        )

    @property
    def identity(self) -> str:
        """What the record is about: the item's key, or ``source:line`` for a row.

        ``invalid`` and ``duplicate`` records are about a manifest row, not an
        item: a duplicate row must not hide the status of the item it repeats.
        """
        if self.key is None or self.status in ROW_STATUSES:
            return f"{self.source}:{self.line}"
        return self.key


def _from_key(key: str | None, status: str) -> tuple[str | None, str | None]:
    """The model and precision an item's key names (``None`` for a manifest row's record)."""
    if key is None or status in ROW_STATUSES:
        return None, None
    model, _, precision = key.partition("@")
    return model, precision or None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class ReportWriter:
    """Appends records to a report file, durably.

    Opening creates the file (and nothing else: its folder must exist), or
    opens an existing one for appending after cutting off a torn last line.
    Each :meth:`write` is one ``write`` call of a whole line, flushed at once;
    the file is fsync'd when a write comes a second or more after the last
    fsync, whenever :meth:`sync` is called, and on :meth:`close`.

    One writer per report: opening takes an exclusive lock on the file, held
    until :meth:`close` (or the end of the process), so two batches can never
    interleave their records or prepare the same items twice. Readers
    (:func:`read_report`, ``fwprep report``) take no lock.

    Raises:
        ReportError: when the file cannot be opened or written (disk full,
            file size limit, permissions), or another process holds its lock
            (naming that process where the system tells), with the reason.
    """

    def __init__(self, path: str | os.PathLike[str], *, sync_interval: float = 1.0) -> None:
        self.path = Path(path)
        self._sync_interval = sync_interval
        self._last_sync = time.monotonic()
        self._dirty = False
        self._broken = False
        try:
            # Unbuffered: a write that fails leaves nothing behind to be flushed later.
            self._file: BinaryIO = open(self.path, "a+b", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise self._error("write", exc) from None
        try:
            self._lock()
            self._repair_tail()
            self._end = self._file.seek(0, os.SEEK_END)  # one writer: kept up to date below
        except OSError as exc:
            self._file.close()
            raise self._error("write", exc) from None
        except ReportError:
            self._file.close()
            raise

    def _lock(self) -> None:
        """Take the report's exclusive lock, or say which process holds it.

        An ``flock`` on the open file: the kernel releases it when the process
        ends, however it ends (kill -9 included), so a resumed run right after
        a crash finds it free.
        """
        if fcntl is None:
            return  # no advisory locks on this platform
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(self._file.fileno())
            by = f" by process {holder}" if holder else ""
            raise ReportError(
                f"the report {self.path} is in use{by}: another batch is writing it. "
                "Wait for that batch to end, or write to another report"
            ) from None

    def _error(self, action: str, exc: OSError) -> ReportError:
        return ReportError(f"cannot {action} the report {self.path}: {exc.strerror or exc}")

    def _repair_tail(self) -> None:
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        back = min(size, 1 << 20)
        self._file.seek(size - back)
        tail = self._file.read(back)
        if tail.endswith(b"\n"):
            return
        cut = tail.rfind(b"\n")
        if cut == -1 and back < size:
            self._file.write(b"\n")  # an unreadably long last line: end it, keep it
        else:
            self._file.truncate(size - back + cut + 1)  # cut the torn record off
        self._file.seek(0, os.SEEK_END)

    def write(self, record: Record) -> None:
        """Append one record, flushed at once.

        After a failed write (disk full, file size limit) the writer refuses
        further records: the run has to stop. What the failed write managed to
        put down is cut off again, so the report holds exactly the records
        that were written whole (a line cut just before its newline would
        otherwise read as a record the run never claimed).
        """
        if self._broken:
            raise ReportError(f"the report {self.path} could not be written earlier")
        data = (record.to_line() + "\n").encode("utf-8")
        end = self._end
        try:
            written = 0
            while written < len(data):  # after a short write, the next one says why
                count = self._file.write(data[written:])
                if not count:
                    raise OSError(errno.EIO, "the write was cut short")
                written += count
        except OSError as exc:
            self._broken = True
            with contextlib.suppress(OSError):
                self._file.truncate(end)
            raise self._error("write", exc) from None
        self._end += len(data)
        self._dirty = True
        if time.monotonic() - self._last_sync >= self._sync_interval:
            self.sync()

    def sync(self) -> None:
        """Fsync the report if anything was written since the last fsync."""
        if not self._dirty or self._broken:
            return
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise self._error("sync", exc) from None
        self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        """Fsync and close. After a failed write, closing does not raise again.

        Raises:
            ReportError: when the last fsync or the close fails on a report
                whose writes had all succeeded.
        """
        if self._file.closed:
            return
        try:
            self.sync()
        finally:
            try:
                self._file.close()
            except OSError as exc:
                # After a failed write, the buffer holds only that write's bytes,
                # and that failure was already reported.
                if not self._broken:
                    raise self._error("close", exc) from None


@attrs.define
class ReportContents:
    """What one or more reports say: the last record of each key, and any damage.

    Attributes:
        last: the last record per :attr:`Record.identity`, in first-seen order.
        bad_lines: ``path:line: reason`` for each line that could not be read,
            other than a torn last line.
        torn: how many reports ended in a torn line (ignored).
    """

    last: dict[str, Record] = attrs.field(factory=dict)
    bad_lines: list[str] = attrs.field(factory=list)
    torn: int = 0

    def done_keys(self) -> frozenset[str]:
        """Keys whose last status is ``ok`` or ``skipped``: the work ``--resume`` skips."""
        return frozenset(
            k for k, r in self.last.items() if r.status in DONE_STATUSES and r.key is not None
        )

    def counts(self) -> Counter[str]:
        """How many identities end in each status."""
        return Counter(r.status for r in self.last.values())


def _lock_holder(fd: int) -> int | None:
    """The process holding an flock on the file ``fd`` is open on, from Linux's /proc/locks."""
    try:
        inode = os.fstat(fd).st_ino
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                    return int(fields[4])
    except (OSError, ValueError):
        return None
    return None


class _Damage(Protocol):
    torn: int
    bad_lines: list[str]


def record_of(raw: bytes) -> Record:
    """One line of a report as a :class:`Record`; a :class:`ValueError` for anything else."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return Record.from_json(data)


def note_damage(contents: _Damage, raw: bytes, where: str, error: ValueError) -> None:
    """Count a line that is not a record: a torn write (the last line, cut short) or damage."""
    if not raw.endswith(b"\n"):  # only a file's last line can lack its newline
        contents.torn += 1
    else:
        contents.bad_lines.append(f"{where}: unreadable record: {error}")


def is_report(path: str | os.PathLike[str]) -> bool | None:
    """Whether the file at ``path`` is a fwprep report: its first line is a report record.

    ``None`` for a file that is empty or holds only blank lines (nothing to
    tell), ``False`` for any other content. Reads at most the first line (up
    to 64 KiB), so it is cheap on a large file.

    Raises:
        OSError: when the file cannot be opened or read.
    """
    with open(path, "rb") as lines:
        while raw := lines.readline(_SNIFF_LIMIT + 1):
            if not raw.strip():
                continue
            if len(raw) > _SNIFF_LIMIT:
                return False
            try:
                data = json.loads(raw)
                if not isinstance(data, dict) or not {"key", "status", "ts"} <= data.keys():
                    return False
                Record.from_json(data)
            except ValueError:
                return False
            return True
    return None


_SNIFF_LIMIT = 1 << 16
"""Longest first line :func:`is_report` takes as a record (the writer's lines are far shorter)."""


def report_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Each line of one report, numbered from 1, as bytes (a torn last line included).

    The one place reports are read from disk, for :func:`read_report` and
    :func:`~fwprep.batch.journal.index_report` alike.

    Raises:
        ReportError: when the report cannot be opened or read, with the reason.
    """
    try:
        with path.open("rb") as lines:
            yield from enumerate(lines, start=1)
    except OSError as exc:
        raise ReportError(f"cannot read the report {path}: {exc.strerror or exc}") from None


def read_report(paths: Iterable[str | os.PathLike[str]]) -> ReportContents:
    """Read one or more reports (for example, one per shard) into their last records.

    Within one report a later record replaces an earlier one, whatever its
    ``ts`` (a clock stepped back does not reorder a journal); across
    reports, the record with the latest ``ts`` wins, as in
    :func:`~fwprep.batch.journal.index_report`. Raises :class:`ReportError`
    only when a report cannot be opened; damaged lines are listed in
    :attr:`ReportContents.bad_lines`.
    """
    contents = ReportContents()
    paths = list(paths)
    merging = len(paths) > 1
    for raw_path in paths:
        path = Path(raw_path)
        for number, raw in report_lines(path):
            if not raw.strip():
                continue
            try:
                record = record_of(raw)
            except ValueError as exc:
                note_damage(contents, raw, f"{path}:{number}", exc)
                continue
            current = contents.last.get(record.identity)
            if current is None or not merging or record.ts >= current.ts:
                contents.last[record.identity] = record
    return contents


def last_records(
    paths: Iterable[str | os.PathLike[str]],
    statuses: Collection[str],
    status_of: Callable[[str], str | None],
) -> dict[str, Record]:
    """The last record of every identity whose last status is one of ``statuses``.

    ``status_of`` gives an identity's last status across the reports (an
    index's :meth:`~fwprep.batch.journal.ReportIndex.status_of`); among the
    records that end so, the later one within a report and the latest ``ts``
    across reports is the last, the rule of :func:`read_report`. Only the
    records asked for are held: the failed items of a million-line report
    cost their own records, not the report's. Damaged lines are skipped (the
    index lists them).
    """
    found: dict[str, Record] = {}
    paths = list(paths)
    merging = len(paths) > 1
    quoted = [f'"{status}"'.encode() for status in statuses]
    for raw_path in paths:
        for _, raw in report_lines(Path(raw_path)):
            if not any(q in raw for q in quoted):
                continue  # no wanted status anywhere in the line: no need to parse it
            try:
                record = record_of(raw)
            except ValueError:
                continue
            if record.status not in statuses or status_of(record.identity) != record.status:
                continue
            current = found.get(record.identity)
            if current is None or not merging or record.ts >= current.ts:
                found[record.identity] = record
    return found
