"""Reading large reports at flat cost: the last status of every item, and little else.

``--resume`` and ``fwprep report`` need, per item, only its last status (and,
for a failure, its error; for an ``accepted`` item, when it was accepted).
:func:`index_report` keeps just that, keyed by a 64-bit hash of the item's
key, so a report of a million items is read in seconds into about a hundred
megabytes, where whole records would take several times that.

Lines in the report writer's own layout (``{"key":...,"status":...,...}``)
are read without a full JSON parse unless the status needs more than the
key (a failure's error, a manifest row's ``source:line``); any other line
goes through :meth:`Record.from_json` as :func:`read_report` does, and one
that cannot be read is listed in :attr:`ReportIndex.bad_lines`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from fwprep.batch.failures import ErrorKey
from fwprep.batch.report import note_damage, record_of, report_lines
from fwprep.batch.status import FAILED_STATUSES, ROW_STATUSES, STATUSES

__all__ = ["CLAIMED", "ReportIndex", "index_report", "key_hash"]

_CODE = {status: code for code, status in enumerate(STATUSES)}
_ACCEPTED, _FAILED = _CODE["accepted"], _CODE["failed"]
_CLAIMED_BIT = 16  # set on a status once a resumed run has met its key

CLAIMED = "claimed"
"""What :meth:`ReportIndex.claim` says of a key the run met before (a duplicate)."""
# Statuses whose records carry no error and are about an item, not a row: the key says it all.
_FAST = {
    s.encode(): _CODE[s] for s in STATUSES if s not in FAILED_STATUSES and s not in ROW_STATUSES
}
_STRING = rb'"[^"\\]*"'
_NUMBER = rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
# A whole line as the report writer lays it out, for the statuses that carry no error.
_LINE = re.compile(
    rb'\{"key":"([^"\\]*)","status":"([a-z]+)",'
    rb'(?:"model":(?:' + _STRING + rb'|null),"precision":(?:' + _STRING + rb"|null),)?"
    rb'"source":(?:' + _STRING + rb'|null),"line":(?:[0-9]+|null),"ts":"([^"\\]*)"'
    rb'(?:,"attempts":[0-9]+)?(?:,"elapsed_ms":' + _NUMBER + rb')?(?:,"http_status":[0-9]+)?'
    rb"\}\n"
)
_DIGITS = bytes.maketrans(b"", b"")


def key_hash(key: str) -> int:
    """The 64-bit hash an item's key is kept as (Python's own, stable within a process)."""
    return hash(key)


def _stamp(ts: bytes | str) -> int:
    """A timestamp as an integer that orders like it: the digits of ``2026-11-26T18:20:31.651Z``."""
    raw = ts.encode() if isinstance(ts, str) else ts
    digits = raw.translate(_DIGITS, b"-:T.Z ")
    return int(digits) if digits.isdigit() else 0


class ReportIndex:
    """The last status of every item (or manifest row) of one or more reports, compactly.

    Attributes:
        bad_lines: ``path:line: reason`` for each line that could not be read,
            other than a torn last line.
        torn: how many reports ended in a torn line (ignored).
    """

    def __init__(self, *, merging: bool) -> None:
        self.bad_lines: list[str] = []
        self.torn = 0
        self._status: dict[int, int] = {}
        self._stamps: dict[int, int] | None = {} if merging else None
        self._accepted: dict[int, int] = {}  # when, as a stamp
        self._failed: dict[int, ErrorKey] = {}
        self._messages: dict[ErrorKey, ErrorKey] = {}  # one copy of each

    def __len__(self) -> int:
        return len(self._status)

    def status_of(self, key: str) -> str | None:
        """The last status of ``key`` (an item's key, or ``source:line`` for a row)."""
        code = self._status.get(key_hash(key))
        return None if code is None else STATUSES[code & ~_CLAIMED_BIT]

    def peek(self, hashed: int) -> str | None:
        """The last status of the item whose key hashes to ``hashed``, claiming nothing."""
        code = self._status.get(hashed)
        return None if code is None else STATUSES[code & ~_CLAIMED_BIT]

    def claim(self, hashed: int) -> str | None:
        """A resumed run meets the item whose key hashes to ``hashed``: its last status.

        ``None`` when the report does not have it, and :data:`CLAIMED` when
        the run met it before (a duplicate), so that the run needs no set of
        its own for the keys the report already holds.
        """
        code = self._status.get(hashed)
        if code is None:
            return None
        if code & _CLAIMED_BIT:
            return CLAIMED
        self._status[hashed] = code | _CLAIMED_BIT
        return STATUSES[code]

    def release(self) -> None:
        """Forget every claim: a plan made before the run leaves the index as it found it."""
        status = self._status
        for hashed, code in status.items():
            if code & _CLAIMED_BIT:
                status[hashed] = code & ~_CLAIMED_BIT

    def waited(self, key: str, now: datetime | None = None) -> float:
        """Seconds since ``key`` was recorded ``accepted`` (0 when unknown)."""
        stamp = self._accepted.get(key_hash(key))
        if stamp is None:
            return 0.0
        try:
            then = datetime.strptime(str(stamp), "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
        except ValueError:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())

    def counts(self) -> Counter[str]:
        """How many identities end in each status."""
        codes = Counter(code & ~_CLAIMED_BIT for code in self._status.values())
        return Counter({STATUSES[code]: n for code, n in codes.items()})

    def count(self, statuses: Iterable[str]) -> int:
        """How many identities end in one of ``statuses``."""
        counts = self.counts()
        return sum(counts[status] for status in statuses)

    def errors(self) -> Counter[ErrorKey]:
        """Items whose last record is ``failed``, per (error type, API code, message)."""
        return Counter(self._failed.values())

    def add(self, hashed: int, code: int, stamp: int, error: ErrorKey | None) -> None:
        """Fold in one record: a later one replaces an earlier one (by ``ts`` across reports)."""
        if self._stamps is not None:
            if stamp < self._stamps.get(hashed, -1):
                return
            self._stamps[hashed] = stamp
        self._status[hashed] = code
        if code == _ACCEPTED:
            self._accepted[hashed] = stamp
        elif self._accepted:
            self._accepted.pop(hashed, None)
        if code == _FAILED and error is not None:
            self._failed[hashed] = self._messages.setdefault(error, error)
        elif self._failed:
            self._failed.pop(hashed, None)

    def read(self, path: Path) -> None:
        """Fold in every line of one report (the loop is written for speed: millions of lines)."""
        line_of, fast, add = _LINE.fullmatch, _FAST, self.add
        status, accepted, failed = self._status, self._accepted, self._failed
        plain = self._stamps is None  # one report: a later line simply replaces
        for number, raw in report_lines(path):
            parts = line_of(raw)
            if parts is not None:
                code = fast.get(parts.group(2))
                if code is not None:
                    hashed = hash(parts.group(1).decode())
                    if plain and code != _ACCEPTED:
                        status[hashed] = code
                        if accepted:
                            accepted.pop(hashed, None)
                        if failed:
                            failed.pop(hashed, None)
                        continue
                    add(hashed, code, _stamp(parts.group(3)), None)
                    continue
            if raw.strip():
                self._read_record(raw, f"{path}:{number}")

    def _read_record(self, raw: bytes, where: str) -> None:
        """A line the fast path does not take: read it whole, as :func:`read_report` does."""
        try:
            record = record_of(raw)
        except ValueError as exc:
            note_damage(self, raw, where, exc)
            return
        error = (
            (record.error.type, record.error.code, record.error.message) if record.error else None
        )
        self.add(key_hash(record.identity), _CODE[record.status], _stamp(record.ts), error)


def index_report(paths: Iterable[str | os.PathLike[str]]) -> ReportIndex:
    """Read one or more reports (one per shard, say) into a :class:`ReportIndex`.

    Within a report a later record replaces an earlier one; across reports
    the record with the latest ``ts`` wins. Raises :class:`ReportError` only
    when a report cannot be opened; damaged lines are listed in
    :attr:`ReportIndex.bad_lines`.
    """
    paths = list(paths)
    index = ReportIndex(merging=len(paths) > 1)
    for raw_path in paths:
        index.read(Path(raw_path))
    return index
