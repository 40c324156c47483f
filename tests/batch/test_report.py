from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fwprep.batch import ErrorInfo, Record, ReportError, ReportWriter, read_report
from fwprep.batch.status import RecordStatus


def rec(key: str | None, status: RecordStatus, ts: str, **kw: Any) -> Record:
    return Record(
        key=key,
        status=status,
        model="m",
        precision="FP8",
        source="f.csv",
        line=3,
        ts=ts,
        **kw,
    )


def test_records_round_trip_and_leave_unset_fields_out(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = ReportWriter(path)
    started = rec("k@FP8", "started", "2026-01-01T00:00:00.000Z")
    failed = rec(
        "k@FP8",
        "failed",
        "2026-01-01T00:00:01.000Z",
        attempts=3,
        elapsed_ms=12.3,
        http_status=503,
        error=ErrorInfo("ServerError", "UNAVAILABLE", "HTTP 503 UNAVAILABLE: down"),
    )
    writer.write(started)
    writer.write(failed)
    writer.close()
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {
        "key": "k@FP8",
        "status": "started",
        "model": "m",
        "precision": "FP8",
        "source": "f.csv",
        "line": 3,
        "ts": "2026-01-01T00:00:00.000Z",
    }
    assert json.loads(lines[1])["error"] == {
        "type": "ServerError",
        "code": "UNAVAILABLE",
        "message": "HTTP 503 UNAVAILABLE: down",
    }
    contents = read_report([path])
    assert contents.last == {"k@FP8": Record.from_json(json.loads(lines[1]))}
    assert contents.last["k@FP8"] == failed


def test_the_last_record_of_a_key_wins_and_done_keys_are_ok_or_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = ReportWriter(path)
    for record in [
        rec("a", "started", "1"),
        rec("a", "failed", "2"),
        rec("a", "started", "3"),
        rec("a", "ok", "4"),
        rec("b", "started", "1"),
        rec("b", "ok", "2"),
        rec("b", "started", "5"),
        rec("b", "interrupted", "6"),
        rec("c", "skipped", "1"),
        rec("d", "started", "1"),
    ]:
        writer.write(record)
    writer.close()
    contents = read_report([path])
    assert {k: r.status for k, r in contents.last.items()} == {
        "a": "ok",
        "b": "interrupted",
        "c": "skipped",
        "d": "started",
    }
    assert contents.done_keys() == {"a", "c"}


def test_a_duplicate_row_does_not_hide_the_status_of_the_item_it_repeats(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = ReportWriter(path)
    writer.write(rec("a", "ok", "1"))
    writer.write(
        Record(
            key="a", status="duplicate", model="m", precision=None, source="f.csv", line=9, ts="2"
        )
    )
    writer.write(
        Record(
            key=None, status="invalid", model="x", precision=None, source="f.csv", line=10, ts="3"
        )
    )
    writer.close()
    contents = read_report([path])
    assert contents.done_keys() == {"a"}
    assert set(contents.last) == {"a", "f.csv:9", "f.csv:10"}


def test_a_torn_last_line_is_ignored_on_read_and_cut_off_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = ReportWriter(path)
    writer.write(rec("a", "ok", "1"))
    writer.close()
    with path.open("ab") as fh:
        fh.write(b'{"key": "b", "status": "o')  # a crash mid-write
    contents = read_report([path])
    assert contents.torn == 1
    assert contents.bad_lines == []
    assert set(contents.last) == {"a"}
    writer = ReportWriter(path)  # a resumed run
    writer.write(rec("b", "ok", "2"))
    writer.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "b"]


def test_damaged_middle_lines_are_listed_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"key":"a","status":"ok","ts":"1"}\nnot json\n[1]\n{"status":"weird"}\n\n{"key":"b","status":"ok","ts":"2"}\n'
    )
    contents = read_report([path])
    assert set(contents.last) == {"a", "b"}
    assert [b.split(": ")[0] for b in contents.bad_lines] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_shard_reports_merge_by_latest_timestamp(tmp_path: Path) -> None:
    one, two = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    for path, records in (
        (one, [rec("a", "failed", "5"), rec("b", "ok", "1")]),
        (two, [rec("a", "ok", "6")]),
    ):
        writer = ReportWriter(path)
        for record in records:
            writer.write(record)
        writer.close()
    contents = read_report([one, two])
    assert contents.counts() == {"ok": 2}


def test_an_unwritable_report_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot write the report"):
        ReportWriter(tmp_path / "no-such-folder" / "r.jsonl")
    with pytest.raises(ReportError, match="cannot write the report"):
        ReportWriter(tmp_path)  # a folder


def test_missing_report_is_a_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot read the report"):
        read_report([tmp_path / "nope.jsonl"])


def test_a_second_writer_on_one_report_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    first = ReportWriter(path)
    in_use = re.escape(f"the report {path} is in use by process {os.getpid()}")
    with pytest.raises(ReportError, match=in_use):
        ReportWriter(path)
    first.close()
    ReportWriter(path).close()


@pytest.mark.parametrize("short_by", [1, 20])
def test_a_write_cut_short_by_the_file_size_limit_leaves_no_part_of_its_record(
    tmp_path: Path, short_by: int
) -> None:
    # The limit ends the file `short_by` bytes before the second record's end:
    # one byte short leaves a whole JSON object without its newline, which a
    # reader would take for a record the writer reported as not written.
    path = tmp_path / "r.jsonl"
    first = rec("a@FP8", "ok", "2026-01-01T00:00:00.000Z").to_line() + "\n"
    second = rec("b@FP8", "ok", "2026-01-01T00:00:01.000Z").to_line() + "\n"
    limit = len(first) + len(second) - short_by
    script = f"""
import resource
from fwprep.batch import ReportError, ReportWriter, Record
import json
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
writer = ReportWriter({str(path)!r})
for line in {[first, second]!r}:
    try:
        writer.write(Record.from_json(json.loads(line)))
    except ReportError as exc:
        print("refused:", exc)
writer.close()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.stderr == ""
    assert result.stdout.startswith("refused: cannot write the report")
    assert "File too large" in result.stdout
    assert path.read_text() == first
    assert list(read_report([path]).last) == ["a@FP8"]
