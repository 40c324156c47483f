"""The compact report index: what --resume and fwprep report read from large reports."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fwprep.batch.manifest as manifest_module
from fwprep import FireworksClient
from fwprep.batch import run_batch
from fwprep.batch.admit import Admission, Admitted, plan_batch
from fwprep.batch.journal import CLAIMED, index_report, key_hash
from fwprep.batch.report import ErrorInfo, Record, ReportWriter, read_report
from fwprep.batch.status import STATUSES
from fwprep.emulator import Emulator
from fwprep.models import PrepareItem
from fwprep.names import ModelRef


def record(i: int, status: str, ts: str = "2026-11-26T10:00:00.000Z") -> Record:
    model = f"accounts/acme/models/m{i}"
    error = ErrorInfo("ServerError", "INTERNAL", f"boom {i % 2}") if status == "failed" else None
    key = None if status == "invalid" else f"{model}@FP8"
    return Record(
        key=key,
        status=status,  # type: ignore[arg-type]
        model=model,
        precision="FP8",
        source="m.csv",
        line=i + 2,
        ts=ts,
        error=error,
    )


def write(path: Path, records: list[Record]) -> Path:
    writer = ReportWriter(path)
    for r in records:
        writer.write(r)
    writer.close()
    return path


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(STATUSES)), max_size=40))
def test_the_index_agrees_with_the_records(tmp_path_factory: object, steps: list) -> None:  # type: ignore[type-arg]
    path = write(
        Path(tmp_path_factory.mktemp("r")) / "r.jsonl",  # type: ignore[attr-defined]
        [record(i, status) for i, status in steps],
    )
    full = read_report([path])
    index = index_report([path])
    assert index.counts() == full.counts()
    assert len(index) == len(full.last)
    failed = [
        (r.error.type, r.error.code, r.error.message)
        for r in full.last.values()
        if r.error and r.status == "failed"
    ]
    assert index.errors() == Counter(failed)
    for identity, last in full.last.items():
        assert index.status_of(identity) == last.status


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_OPTIONAL_INT = st.none() | st.integers(0, 10**6)


@st.composite
def any_record(draw: st.DrawFn, identity: int) -> Record:
    """A record as a run may write it: any status, any optional field, awkward text."""
    status = draw(st.sampled_from(STATUSES))
    model = f"accounts/acme/models/m{identity}" + draw(st.sampled_from(["", '"q"', "\\", "é"]))
    precision = draw(st.sampled_from(["FP8", "BF16", "X"]))
    key = draw(st.sampled_from([f"{model}@{precision}", None]))
    return Record(
        key=key,
        status=status,
        model=draw(st.sampled_from([model, None, f"{model}-other"])),
        precision=draw(st.sampled_from([precision, None])),
        source=draw(st.none() | _TEXT),
        line=draw(_OPTIONAL_INT),
        ts=draw(st.sampled_from(["2026-11-26T10:00:00.000Z", "2026-11-26T10:00:01.500Z", ""])),
        attempts=draw(_OPTIONAL_INT),
        elapsed_ms=draw(st.none() | st.floats(0, 1e9, allow_nan=False)),
        http_status=draw(st.none() | st.integers(100, 599)),
        error=draw(st.none() | st.builds(ErrorInfo, _TEXT, st.none() | _TEXT, _TEXT)),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5).flatmap(any_record), max_size=12))
@example(  # two failures whose error codes are "" and absent: errors compare, not sort
    records=[
        attrs.evolve(record(0, "failed"), error=ErrorInfo("E", "", "")),
        attrs.evolve(record(1, "failed"), error=ErrorInfo("E", None, "")),
    ]
)
def test_every_line_the_writer_writes_is_read_back_alike_by_both_paths(
    tmp_path_factory: pytest.TempPathFactory, records: list[Record]
) -> None:
    # Whatever the fields, the index (its fast path or the full parse) and the
    # full reader agree on each identity's last status and a failure's error.
    path = write(tmp_path_factory.mktemp("r") / "r.jsonl", records)
    full = read_report([path])
    index = index_report([path])
    assert index.bad_lines == full.bad_lines == []
    assert index.counts() == full.counts()
    for identity, last in full.last.items():
        assert index.status_of(identity) == last.status
    failed = [
        (r.error.type, r.error.code, r.error.message)
        for r in full.last.values()
        if r.status == "failed" and r.error is not None
    ]
    assert index.errors() == Counter(failed)


def test_model_and_precision_are_left_out_when_the_key_says_them(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [record(1, "started"), record(2, "invalid")])
    started, invalid = (json.loads(line) for line in path.read_text().splitlines())
    assert "model" not in started
    assert "precision" not in started
    assert invalid["model"] == "accounts/acme/models/m2"  # a row's record keeps them
    again = read_report([path]).last
    assert again["accounts/acme/models/m1@FP8"].model == "accounts/acme/models/m1"
    assert again["accounts/acme/models/m1@FP8"].precision == "FP8"


def test_damaged_and_torn_lines_are_reported_as_before(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    good = record(1, "ok").to_line()
    path.write_text(
        good + '\n{"key":"x","status":"ok",oops}\nnot json\n' + record(2, "ok").to_line()[:30]
    )
    index = index_report([path])
    assert index.status_of("accounts/acme/models/m1@FP8") == "ok"
    assert [line.split(": ")[0] for line in index.bad_lines] == [f"{path}:2", f"{path}:3"]
    assert index.torn == 1


def test_across_reports_the_latest_record_wins(tmp_path: Path) -> None:
    one = write(tmp_path / "1.jsonl", [record(1, "failed", "2026-11-26T10:00:05.000Z")])
    two = write(tmp_path / "2.jsonl", [record(1, "ok", "2026-11-26T10:00:06.000Z")])
    three = write(tmp_path / "3.jsonl", [record(1, "started", "2026-11-26T10:00:01.000Z")])
    index = index_report([one, two, three])
    assert index.counts() == {"ok": 1}
    assert not index.errors()


def test_an_accepted_item_knows_how_long_it_has_waited(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [record(1, "accepted", "2026-11-26T10:00:00.000Z")])
    index = index_report([path])
    now = datetime(2026, 11, 26, 10, 2, 30, tzinfo=UTC)
    assert index.waited("accounts/acme/models/m1@FP8", now) == 150.0
    assert index.waited("accounts/acme/models/m9@FP8", now) == 0.0


def test_a_resumed_admission_claims_keys_in_the_index_and_finds_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.jsonl", [record(0, "ok"), record(1, "accepted"), record(2, "failed")]
    )
    index = index_report([path])
    items = [PrepareItem(ModelRef("acme", f"m{i}"), "fp8") for i in (0, 1, 2, 3, 0, 3)]
    admission = Admission(resumed=index, wait=True)
    verdicts = [admission.admit(item) for item in items]
    assert verdicts == [
        Admitted.DONE,
        Admitted.WAIT,
        Admitted.RUN,
        Admitted.RUN,
        Admitted.DUPLICATE,
        Admitted.DUPLICATE,
    ]
    assert index.claim(key_hash("accounts/acme/models/m0@FP8")) == CLAIMED
    assert index.counts() == {"ok": 1, "accepted": 1, "failed": 1}  # claiming changes no count
    without_wait = Admission(resumed=index_report([path]), wait=False)
    assert without_wait.admit(items[1]) is Admitted.DONE


async def test_a_plan_over_a_resumed_index_leaves_it_as_it_found_it(tmp_path: Path) -> None:
    # --check's count and the progress total plan over the index the run then uses.
    path = write(tmp_path / "r.jsonl", [record(0, "ok"), record(1, "accepted")])
    index = index_report([path])
    items = [PrepareItem(ModelRef("acme", f"m{i}"), "fp8") for i in (0, 1, 2, 0)]
    plan = await plan_batch(items, resumed=index, wait=True)
    assert (plan.already_done, plan.to_wait, plan.to_send, plan.duplicates) == (1, 1, 1, 1)
    assert index.claim(key_hash("accounts/acme/models/m0@FP8")) == "ok"  # not CLAIMED
    assert index.claim(key_hash("accounts/acme/models/m1@FP8")) == "accepted"


async def test_a_resumed_run_passes_over_done_rows_without_validating_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "models.csv"
    manifest.write_text("model,precision\nm0,fp8\nm1,FP8\nm0,fp8\nm2,fp8\nBAD,fp8\n")
    write(Path(f"{manifest}.report.jsonl"), [record(0, "ok"), record(1, "ok")])
    built: list[object] = []
    original = manifest_module.make_entry

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(manifest_module, "make_entry", counting)
    async with Emulator() as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url, account_id="acme") as c:
            summary = await run_batch(manifest, client=c, resume=True)
        prepared = list(emu.stats.prepare_requests)
    assert summary.already_done == 2
    # Only the rows not done are validated: the duplicate of m0, m2 and the bad row.
    assert built == ["m0", "m2", "BAD"]
    assert summary.counts == {"duplicate": 1, "ok": 1, "invalid": 1}
    assert prepared == ["accounts/acme/models/m2@FP8"]
