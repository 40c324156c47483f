"""``fwprep report --status``: which items ended how and why, and a manifest to run them again."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import run_cli

from fwprep.batch.journal import index_report
from fwprep.batch.report import ErrorInfo, Record, ReportWriter, last_records, read_report
from fwprep.batch.status import STATUSES
from fwprep.emulator import EmulatorThread


def rec(
    name: str,
    status: str,
    ts: str,
    error: ErrorInfo | None = None,
    attempts: int | None = None,
    http: int | None = None,
) -> Record:
    model = f"accounts/acme/models/{name}"
    return Record(
        key=f"{model}@FP8",
        status=status,  # type: ignore[arg-type]
        model=model,
        precision="FP8",
        source="m.csv",
        line=2,
        ts=ts,
        attempts=attempts,
        http_status=http,
        error=error,
    )


UPLOADING = ErrorInfo("FailedPreconditionError", "FAILED_PRECONDITION", "model is still uploading")


def write(path: Path, *records: Record) -> Path:
    writer = ReportWriter(path)
    for r in records:
        writer.write(r)
    writer.close()
    return path


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    """Two shard reports: three items fail for good, one failed and then succeeded."""
    gone = [ErrorInfo("NotFoundError", "NOT_FOUND", f"no model m{i}") for i in range(2)]
    a = write(
        tmp_path / "a.jsonl",
        rec("up1", "failed", "2026-12-01T10:00:00.000Z", UPLOADING, 1, 412),
        rec("fixed", "failed", "2026-12-01T10:00:01.000Z", UPLOADING, 1, 412),
        rec("fine", "ok", "2026-12-01T10:00:02.000Z", attempts=1, http=200),
    )
    b = write(
        tmp_path / "b.jsonl",
        rec("m0", "failed", "2026-12-01T10:00:00.000Z", gone[0], 2, 404),
        rec("m1", "failed", "2026-12-01T10:00:00.000Z", gone[1], 2, 404),
        rec("fixed", "ok", "2026-12-01T11:00:00.000Z", attempts=1, http=200),
    )
    return [a, b]


def test_the_summary_groups_errors_by_type_and_code(
    shards: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "report", *map(str, shards))
    assert code == 1
    assert "5 items in 2 reports: 3 failed, 2 ok" in out
    assert "  2 x NotFoundError (NOT_FOUND): 2 different messages, such as: no model m" in out
    assert "  1 x FailedPreconditionError (FAILED_PRECONDITION): model is still uploading" in out
    code, out, _ = run_cli(capsys, "report", *map(str, shards), "-o", "json")
    groups = json.loads(out)["top_errors"]
    assert [(g["code"], g["count"], g["messages"]) for g in groups] == [
        ("NOT_FOUND", 2, 2),
        ("FAILED_PRECONDITION", 1, 1),
    ]


def test_status_failed_lists_which_and_why_across_shards(
    shards: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "report", *map(str, shards), "--status", "failed")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == [
        "key",
        "status",
        "attempts",
        "http_status",
        "error_type",
        "error_code",
        "message",
    ]
    listed = {line.split()[0]: line for line in lines[1:]}
    assert set(listed) == {f"accounts/acme/models/{m}@FP8" for m in ("up1", "m0", "m1")}
    assert listed["accounts/acme/models/up1@FP8"].split()[2:6] == [
        "1",
        "412",
        "FailedPreconditionError",
        "FAILED_PRECONDITION",
    ]
    assert listed["accounts/acme/models/up1@FP8"].endswith("model is still uploading")
    assert "fwprep: 3 items" in err


def test_csv_and_jsonl_carry_the_same_items(
    shards: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_cli(
        capsys, "report", *map(str, shards), "-s", "failed", "-s", "ok", "-o", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {(r["key"].split("/")[-1], r["status"]) for r in rows} == {
        ("up1@FP8", "failed"),
        ("m0@FP8", "failed"),
        ("m1@FP8", "failed"),
        ("fine@FP8", "ok"),
        ("fixed@FP8", "ok"),
    }
    _, out, _ = run_cli(capsys, "report", *map(str, shards), "-s", "failed", "-o", "jsonl")
    items = [json.loads(line) for line in out.splitlines()]
    assert {i["error_code"] for i in items} == {"NOT_FOUND", "FAILED_PRECONDITION"}
    assert all(i["precision"] == "FP8" and i["model"] for i in items)


def test_the_manifest_of_failures_runs_again(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "report", *map(str, shards), "-o", "manifest")
    assert code == 1
    assert out.splitlines()[0] == "model,precision"
    again = tmp_path / "again.csv"
    again.write_text(out)
    with EmulatorThread() as emu:
        code, _, err = run_cli(
            capsys, "batch", str(again), "--api-key", emu.api_key, "--base-url", emu.base_url, "-q"
        )
        assert code == 0, err
        assert set(emu.stats.prepare_successes) == {
            f"accounts/acme/models/{m}@FP8" for m in ("up1", "m0", "m1")
        }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--status", "broken"], "invalid choice: 'broken' (choose from 'started', 'accepted'"),
        (["-o", "csv"], "-o csv lists items: give --status"),
        (["--status", "failed", "-o", "json"], "with --status, -o is text, csv"),
    ],
)
def test_bad_report_options_exit_2(
    shards: list[Path], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "report", str(shards[0]), *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1), st.integers(0, 4), st.sampled_from(STATUSES), st.integers(0, 9)
        ),
        max_size=30,
    ),
    st.sets(st.sampled_from(STATUSES), min_size=1),
)
def test_last_records_agree_with_read_report(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, int, str, int]],
    wanted: set[str],
) -> None:
    """The listing's reader and the whole reader pick the same last record, merged or not."""
    folder = tmp_path_factory.mktemp("r")
    per_report: list[list[Record]] = [[], []]
    for report, item, status, second in steps:
        per_report[report].append(rec(f"m{item}", status, f"2026-12-01T10:00:0{second}.000Z"))
    for paths in ([folder / "0.jsonl"], [folder / "0.jsonl", folder / "1.jsonl"]):
        for n, path in enumerate(paths):
            write(path, *per_report[n])
        whole = read_report(paths)
        expected = {k: r for k, r in whole.last.items() if r.status in wanted}
        assert last_records(paths, wanted, index_report(paths).status_of) == expected
