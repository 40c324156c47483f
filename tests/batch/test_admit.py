"""Admission and the status vocabulary, with plain values: no event loop, no server."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from fwprep import ModelRef, PrepareItem
from fwprep.batch import InvalidRow, Record, Shard, plan_batch
from fwprep.batch.admit import Admission, Admitted
from fwprep.batch.manifest import ManifestEntry
from fwprep.batch.status import FINAL_STATUSES, needs_attention
from fwprep.batch.summary import BatchSummary


def item(model: str, precision: str = "fp8", line: int = 1) -> PrepareItem:
    return PrepareItem(ModelRef("acme", model), precision, source="m.csv", line=line)


def test_admission_table() -> None:
    admission = Admission(done={"accounts/acme/models/done@FP8"})
    entries: list[ManifestEntry] = [
        item("a"),
        item("a", line=2),  # the same key again
        item("a", "bf16", line=3),  # another precision: another key
        InvalidRow("m.csv", 4, "bad row"),
        item("done", line=5),
        item("done", line=6),  # a duplicate of a done key is still a duplicate
    ]
    assert [admission.admit(e) for e in entries] == [
        Admitted.RUN,
        Admitted.DUPLICATE,
        Admitted.RUN,
        Admitted.INVALID,
        Admitted.DONE,
        Admitted.DUPLICATE,
    ]


def test_shards_split_items_and_rows_without_overlap() -> None:
    entries: list[ManifestEntry] = [item(f"m{i}", line=i) for i in range(60)]
    entries += [InvalidRow("m.csv", 100 + i, "bad") for i in range(20)]
    owners: Counter[int] = Counter()
    for index in (1, 2, 3):
        admission = Admission(shard=Shard(index, 3))
        owners.update(
            i for i, e in enumerate(entries) if admission.admit(e) is not Admitted.ELSEWHERE
        )
    assert set(owners) == set(range(len(entries)))
    assert set(owners.values()) == {1}


def test_the_plan_uses_the_same_admission() -> None:
    entries: list[ManifestEntry] = [
        item("a"),
        item("a", line=2),
        item("b", "bf16"),
        InvalidRow("m.csv", 9, "x"),
    ]
    plan = asyncio.run(plan_batch(entries, done={"accounts/acme/models/b@BF16"}))
    assert (plan.to_send, plan.duplicates, len(plan.invalid), plan.already_done) == (1, 1, 1, 1)
    assert plan.records == 3


def record(status: str) -> Record:
    return Record(key="k", status=status, model="m", precision=None, source=None, line=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", FINAL_STATUSES)
def test_the_exit_code_and_the_report_agree_on_every_status(status: str) -> None:
    summary = BatchSummary()
    summary.add(record(status))
    assert (summary.exit_code == 1) is needs_attention(status)
    assert summary.counts == {status: 1}


def test_what_needs_attention() -> None:
    assert {s for s in ("started", *FINAL_STATUSES) if needs_attention(s)} == {
        "started",
        "failed",
        "invalid",
        "interrupted",
    }
