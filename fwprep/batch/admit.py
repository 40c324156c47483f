"""Admission: which entries of a manifest a batch runs, as a pure function of plain values.

Planning (``--dry-run``, the progress bar's total) and running share it, so
they always agree: an entry is run, or recorded as an invalid row or a
duplicate, or skipped as already done or as another shard's.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping

import attrs

from fwprep.batch.journal import CLAIMED, ReportIndex
from fwprep.batch.journal import key_hash as _key_hash
from fwprep.batch.manifest import InvalidRow, Manifest, ManifestEntry, ManifestError
from fwprep.batch.status import DONE_STATUSES, WAITING_STATUSES
from fwprep.errors import ConfigError

__all__ = ["Admission", "Admitted", "BatchPlan", "Shard", "aiter_entries", "plan_batch"]


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
                        "shard auto: SLURM_ARRAY_TASK_ID is set, but SLURM_ARRAY_TASK_COUNT "
                        "(and SLURM_ARRAY_TASK_MIN, if set) are not whole numbers"
                    ) from None
                return cls(index + 1, count)
            if "JOB_COMPLETION_INDEX" in env:
                try:
                    index = int(env["JOB_COMPLETION_INDEX"])
                    count = int(env["FWPREP_SHARD_COUNT"])
                except (KeyError, ValueError):
                    raise ConfigError(
                        "shard auto: JOB_COMPLETION_INDEX is set; set FWPREP_SHARD_COUNT to "
                        "the Job's completions"
                    ) from None
                return cls(index + 1, count)
            raise ConfigError(
                "shard auto: no Slurm array (SLURM_ARRAY_TASK_ID) or Kubernetes Indexed Job "
                "(JOB_COMPLETION_INDEX) found"
            )
        left, sep, right = text.partition("/")
        try:
            index, count = int(left), int(right)
        except ValueError:
            raise ConfigError(f"shard {text!r}: expected K/N, such as 1/4, or auto") from None
        if not sep:
            raise ConfigError(f"shard {text!r}: expected K/N, such as 1/4, or auto")
        return cls(index, count)

    def owns(self, identity: str) -> bool:
        """Whether the item (or row) with this identity belongs to this shard."""
        return _bucket(identity, self.count) == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class Admitted(enum.Enum):
    """What a batch does with one manifest entry."""

    RUN = "run"
    """A valid item, seen for the first time: prepare it."""
    INVALID = "invalid"
    """A row that is not a valid item: recorded ``invalid``."""
    DUPLICATE = "duplicate"
    """An item seen before in this batch: recorded ``duplicate``, run once."""
    DONE = "done"
    """An item the report already has as done (``resume``): skipped."""
    WAIT = "wait"
    """An item the report has as accepted (``resume`` with ``wait``): waited on, not prepared."""
    ELSEWHERE = "elsewhere"
    """Another shard's item or row: not this batch's business."""


class Admission:
    """Decides, entry by entry, what a batch does with each (see :class:`Admitted`).

    It remembers the keys it has admitted, as 64-bit hashes (a third of the
    memory of the strings), to find duplicates. Plain values in, a verdict
    out: no I/O, no event loop.

    Args:
        shard: run only this :class:`Shard` of the entries.
        done: keys an earlier report has as done.
        resumed: an earlier report, read: its done items are ``DONE``, its
            accepted ones ``WAIT`` (``DONE`` unless ``wait``). Admission
            marks the keys it meets there (see
            :meth:`~fwprep.batch.journal.ReportIndex.claim`), so that it
            keeps no set of its own for them.
        wait: whether the batch waits for preparations to finish.
    """

    def __init__(
        self,
        *,
        shard: Shard | None = None,
        done: Iterable[str] = (),
        resumed: ReportIndex | None = None,
        wait: bool = True,
    ) -> None:
        self.shard = shard
        self._done = {_key_hash(k) for k in done}
        self._resumed = resumed
        self._wait = wait
        self._seen: set[int] = set()

    def admit_done(self, key: str) -> Admitted | None:
        """A resumed run's verdict on a row by its key alone, when the report has it as done.

        ``DONE`` (the key is claimed, so a later row naming it is a
        duplicate) or ``ELSEWHERE`` (another shard's); ``None`` when the row
        must be admitted whole (:meth:`admit`): not done, or met before.
        """
        if self._resumed is None:
            return None
        hashed = _key_hash(key)
        if self._resumed.peek(hashed) not in DONE_STATUSES:
            return None
        if self.shard is not None and not self.shard.owns(key):
            return Admitted.ELSEWHERE
        if self._resumed.claim(hashed) == CLAIMED:
            return None
        return Admitted.DONE

    def admit(self, entry: ManifestEntry) -> Admitted:
        """The verdict on ``entry``; a ``RUN`` verdict marks its key as seen."""
        if isinstance(entry, InvalidRow):
            if self.shard is None or self.shard.owns(f"{entry.source}:{entry.line}"):
                return Admitted.INVALID
            return Admitted.ELSEWHERE
        key = entry.key
        if self.shard is not None and not self.shard.owns(key):
            return Admitted.ELSEWHERE
        hashed = _key_hash(key)
        # Keys the report holds are remembered there; only new ones need a set here.
        resumed = None if self._resumed is None else self._resumed.claim(hashed)
        if resumed == CLAIMED or (resumed is None and hashed in self._seen):
            return Admitted.DUPLICATE
        if resumed is None:
            self._seen.add(hashed)
        if hashed in self._done or resumed in DONE_STATUSES:
            return Admitted.DONE
        if resumed in WAITING_STATUSES:
            # Accepting the prepare is all a batch that does not wait asks for.
            return Admitted.WAIT if self._wait else Admitted.DONE
        return Admitted.RUN


@attrs.define
class BatchPlan:
    """What a batch would do (``--dry-run``): counts, and the rows that are not valid.

    Attributes:
        per_precision: items to prepare, per precision.
        per_account: items to prepare, per account (each account has a budget of its own).
        waits_per_account: items accepted before, to wait on (``--resume --wait``), per account.
        duplicates: rows naming an item already met (run once).
        invalid: each invalid row, as ``path:line: reason``.
        already_done: items the report has as done (``--resume``).
        read_error: why a manifest could not be read to its end, if it could not.
    """

    per_precision: Counter[str] = attrs.field(factory=Counter)
    per_account: Counter[str] = attrs.field(factory=Counter)
    waits_per_account: Counter[str] = attrs.field(factory=Counter)
    duplicates: int = 0
    invalid: list[str] = attrs.field(factory=list)
    already_done: int = 0
    read_error: str | None = None

    @property
    def to_send(self) -> int:
        """Items that would be prepared."""
        return sum(self.per_precision.values())

    @property
    def to_wait(self) -> int:
        """Items accepted before, to wait on without preparing again."""
        return sum(self.waits_per_account.values())

    @property
    def records(self) -> int:
        """Final records a run would write: items, waits, duplicates and invalid rows."""
        return self.to_send + self.to_wait + self.duplicates + len(self.invalid)


async def plan_batch(
    entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry],
    *,
    shard: Shard | None = None,
    done: Iterable[str] = (),
    resumed: ReportIndex | None = None,
    wait: bool = True,
    manifests: Iterable[Manifest] = (),
) -> BatchPlan:
    """What a batch of ``entries`` would do, without sending anything or writing a report.

    The same :class:`Admission` a run makes, over the same ``resumed``
    index, so a plan and a run agree on every entry; the index is left as
    it was found (:meth:`~fwprep.batch.journal.ReportIndex.release`). Rows
    of ``manifests`` (those ``entries`` come from) that ``resumed`` has as
    done pass unvalidated, as in a run. A manifest that cannot be read to
    the end is not raised: its error is :attr:`BatchPlan.read_error`,
    beside what was planned up to it.
    """
    plan = BatchPlan()
    admission = Admission(shard=shard, done=done, resumed=resumed, wait=wait)

    def skip(key: str) -> bool:
        verdict = admission.admit_done(key)
        plan.already_done += verdict is Admitted.DONE
        return verdict is not None

    if resumed is not None:
        for manifest in manifests:
            manifest.skip = skip
    try:
        async for entry in aiter_entries(entries):
            verdict = admission.admit(entry)
            if verdict is Admitted.INVALID:
                plan.invalid.append(str(entry))
            elif verdict is Admitted.DUPLICATE:
                plan.duplicates += 1
            elif verdict is Admitted.DONE:
                plan.already_done += 1
            elif verdict is Admitted.WAIT:
                assert not isinstance(entry, InvalidRow)
                plan.waits_per_account[entry.model.account_id] += 1
            elif verdict is Admitted.RUN:
                assert not isinstance(entry, InvalidRow)
                precision = entry.precision.value if entry.precision else "(API default)"
                plan.per_precision[precision] += 1
                plan.per_account[entry.model.account_id] += 1
    except ManifestError as exc:
        plan.read_error = str(exc)
    finally:
        if resumed is not None:
            resumed.release()
    return plan


async def aiter_entries(
    entries: Iterable[ManifestEntry] | AsyncIterable[ManifestEntry],
) -> AsyncIterator[ManifestEntry]:
    """Entries from a sync or an async iterable, as an async iterator."""
    if isinstance(entries, AsyncIterable):
        async for entry in entries:
            yield entry
    else:
        for entry in entries:
            yield entry
