"""The batch and report commands, run as a user runs them: in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import env_for, final_statuses, fwprep, write_manifest

from fwprep.batch.report import ErrorInfo, Record
from fwprep.emulator import EmulatorThread

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread() as e:
        yield e


def test_quickstart_with_emulate(tmp_path: Path) -> None:
    manifest = tmp_path / "quickstart.csv"
    manifest.write_text((REPO / "batch_examples" / "quickstart.csv").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}
    result = fwprep("batch", str(manifest), "--emulate", env=env)
    assert result.returncode == 1  # the example has an invalid row, on purpose
    assert "--emulate: talking to a local Fireworks emulator" in result.stderr
    assert f"{manifest}:16: unknown precision 'fp9'; did you mean FP8 or FP4?" in result.stderr
    assert "12 finished" in result.stderr
    assert "10 ok, 1 invalid, 1 duplicate" in result.stderr
    assert "Traceback" not in result.stderr
    statuses = Counter(final_statuses(Path(f"{manifest}.report.jsonl")).values())
    assert statuses == {"ok": 10, "invalid": 1, "duplicate": 1}


def test_every_format_at_once_with_json_summary(tmp_path: Path, emu: EmulatorThread) -> None:
    (tmp_path / "a.csv").write_text("model,precision\nc1,fp8\n")
    (tmp_path / "b.jsonl").write_text('{"model": "j1", "precision": "bf16"}\n')
    (tmp_path / "c.toml").write_text('[[prepare]]\nmodel = "t1"\nprecisions = ["fp8", "fp4"]\n')
    result = fwprep(
        "batch", "a.csv", "b.jsonl", "c.toml", "-o", "json", "-q", env=env_for(emu), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"ok": 4}
    assert summary["exit_code"] == 0
    assert summary["report"] == "a.csv.report.jsonl"
    assert set(emu.stats.prepare_successes) == {
        "accounts/acme/models/c1@FP8",
        "accounts/acme/models/j1@BF16",
        "accounts/acme/models/t1@FP8",
        "accounts/acme/models/t1@FP4",
    }


def test_a_model_list_with_two_precisions(tmp_path: Path, emu: EmulatorThread) -> None:
    (tmp_path / "models.txt").write_text("# to prepare\nft-1\naccounts/acme/models/ft-2\n")
    (tmp_path / "named.csv").write_text("model,precision\nft-3,bf16\n")
    result = fwprep(
        "batch",
        "models.txt",
        "named.csv",
        "-p",
        "fp8",
        "-p",
        "FP4",
        "-q",
        env=env_for(emu),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "changed nothing" not in result.stderr
    assert set(emu.stats.prepare_successes) == {
        "accounts/acme/models/ft-1@FP8",
        "accounts/acme/models/ft-1@FP4",
        "accounts/acme/models/ft-2@FP8",
        "accounts/acme/models/ft-2@FP4",
        "accounts/acme/models/ft-3@BF16",
    }


def test_precision_for_rows_that_all_name_one_says_it_changed_nothing(
    tmp_path: Path, emu: EmulatorThread
) -> None:
    (tmp_path / "named.csv").write_text("model,precision\nft-3,bf16\n")
    result = fwprep("batch", "named.csv", "-p", "fp8", "-q", env=env_for(emu), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "warning: -p FP8 changed nothing: every valid row names its precision" in result.stderr
    assert set(emu.stats.prepare_successes) == {"accounts/acme/models/ft-3@BF16"}
    bad = fwprep("batch", "named.csv", "-p", "fp9", env=env_for(emu), cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown precision 'fp9'; did you mean FP8 or FP4?" in bad.stderr


def test_stdin_manifest(tmp_path: Path, emu: EmulatorThread) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fwprep", "batch", "-", "--format", "jsonl", "--report", "r.jsonl"],
        input='{"model": "s1", "precision": "fp8"}\n{"model": "BAD"}\n',
        capture_output=True,
        text=True,
        env=env_for(emu),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 1
    assert "<stdin>:2: invalid model id 'BAD'" in result.stderr
    assert emu.stats.prepare_successes == {"accounts/acme/models/s1@FP8": 1}


def test_dry_run_sends_nothing_and_writes_nothing(tmp_path: Path, emu: EmulatorThread) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,fp8\nm2,fp8\nm3,bf16\nBAD,fp8\n")
    result = fwprep("batch", str(manifest), "--dry-run", env=env_for(emu))
    assert result.returncode == 1
    assert "would prepare 3 items; nothing was sent" in result.stdout
    assert "2  FP8" in result.stdout
    assert "1  duplicates" in result.stdout
    assert f"{manifest}:6: invalid model id 'BAD'" in result.stderr
    assert emu.stats.requests == 0
    assert not Path(f"{manifest}.report.jsonl").exists()


def test_strict_sends_nothing_when_a_row_is_bad(tmp_path: Path, emu: EmulatorThread) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,fp99\n")
    result = fwprep("batch", str(manifest), "--strict", env=env_for(emu))
    assert result.returncode == 2
    assert f"{manifest}:3: unknown precision 'fp99'" in result.stderr
    assert "--strict: 1 invalid row; nothing was sent" in result.stderr
    assert emu.stats.requests == 0


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("model,precison\nm1,fp8\n", ":1: unknown column 'precison'"),
        (None, "cannot open: No such file or directory"),
    ],
)
def test_an_unusable_manifest_is_exit_2_before_any_request(
    tmp_path: Path, emu: EmulatorThread, setup: str | None, message: str
) -> None:
    manifest = tmp_path / "m.csv"
    if setup is not None:
        manifest.write_text(setup)
    result = fwprep("batch", str(manifest), env=env_for(emu))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert emu.stats.requests == 0


def test_an_unwritable_report_is_exit_2_before_any_request(
    tmp_path: Path, emu: EmulatorThread
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 3)
    result = fwprep(
        "batch", str(manifest), "--report", str(tmp_path / "missing" / "r.jsonl"), env=env_for(emu)
    )
    assert result.returncode == 2
    assert "cannot write the report" in result.stderr
    assert emu.stats.requests == 0


def test_a_refused_key_halts_with_exit_3(tmp_path: Path, emu: EmulatorThread) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 300)
    result = fwprep("batch", str(manifest), "-j", "4", env=env_for(emu, key="fw-wrong-key-77"))
    assert result.returncode == 3
    assert "halted: the API refused the key" in result.stderr
    assert emu.stats.requests <= 4
    assert "fw-wrong-key-77" not in result.stderr + result.stdout
    assert "fw-wrong-key-77" not in Path(f"{manifest}.report.jsonl").read_text()


def test_shards_split_a_manifest_with_no_overlap_and_no_gap(
    tmp_path: Path, emu: EmulatorThread
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 120)
    reports = []
    for k in (1, 2, 3):
        report = tmp_path / f"shard-{k}.jsonl"
        env = env_for(emu)
        if k == 3:  # the auto form, as a Kubernetes Indexed Job sets it
            env.update(JOB_COMPLETION_INDEX="2", FWPREP_SHARD_COUNT="3")
            shard = "auto"
        else:
            shard = f"{k}/3"
        result = fwprep(
            "batch", str(manifest), "--shard", shard, "--report", str(report), "-q", env=env
        )
        assert result.returncode == 0, result.stderr
        reports.append(report)
    assert len(emu.stats.prepare_successes) == 120
    assert set(emu.stats.prepare_successes.values()) == {1}
    merged = fwprep("report", *map(str, reports), "-o", "json", env=env_for(emu))
    assert merged.returncode == 0
    data = json.loads(merged.stdout)
    assert data["counts"] == {"ok": 120}
    assert data["complete"] is True


def test_report_command_exit_codes(tmp_path: Path, emu: EmulatorThread) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,fp8\n")
    report = Path(f"{manifest}.report.jsonl")
    fwprep("batch", str(manifest), "-q", env=env_for(emu))
    assert fwprep("report", str(report), env=env_for(emu)).returncode == 0
    with report.open("a") as fh:
        fh.write(
            '{"key":"accounts/acme/models/m3@FP8","status":"failed","model":"x",'
            '"precision":"FP8","source":"m.csv","line":4,"ts":"9999",'
            '"error":{"type":"NotFoundError","code":"NOT_FOUND","message":"gone"}}\n'
        )
    result = fwprep("report", str(report), env=env_for(emu))
    assert result.returncode == 1
    assert "1 x NotFoundError (NOT_FOUND): gone" in result.stdout
    missing = fwprep("report", str(tmp_path / "nope.jsonl"), env=env_for(emu))
    assert missing.returncode == 2
    assert "cannot read the report" in missing.stderr


HOLD_REPORT = """
import sys
from fwprep.batch import Record, ReportWriter
writer = ReportWriter(sys.argv[1])
writer.write(Record("accounts/acme/models/m0@FP8", "ok", None, None, "m.csv", 2))
print("locked", flush=True)
sys.stdin.read()
"""


def test_one_writer_per_report_and_kill_9_releases_it(tmp_path: Path, emu: EmulatorThread) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 20)
    report = tmp_path / "r.jsonl"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_REPORT, str(report)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            second = fwprep("batch", str(manifest), "--report", str(report), "-q", env=env_for(emu))
            assert second.returncode == 2
            assert f"the report {report} is in use by process {holder.pid}" in second.stderr
            assert emu.stats.requests == 0  # refused before anything was sent
            reader = fwprep("report", str(report), env=env_for(emu))  # readers take no lock
            assert reader.returncode == 0, reader.stderr
            assert "1 item in 1 report: 1 ok" in reader.stdout
        finally:
            holder.kill()  # SIGKILL: the kernel releases the lock
    third = fwprep("batch", str(manifest), "--report", str(report), "-q", env=env_for(emu))
    assert third.returncode == 0, third.stderr
    assert Counter(final_statuses(report).values()) == {"ok": 20}


def test_max_rpm_paces_a_batch_under_the_accounts_limit(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 40)
    with EmulatorThread(rpm=1200) as emu:  # 20 a second, a bucket one second deep
        paced = fwprep("batch", str(manifest), "--max-rpm", "1200", "-q", env=env_for(emu))
    assert paced.returncode == 0, paced.stderr
    assert emu.stats.statuses == {200: 40}  # not one 429


def test_max_rps_and_max_rpm_are_one_choice(tmp_path: Path, emu: EmulatorThread) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 1)
    both = fwprep("batch", str(manifest), "--max-rps", "5", "--max-rpm", "300", env=env_for(emu))
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr
    assert emu.stats.requests == 0


def test_on_a_terminal_the_progress_bar_counts_against_the_planned_total(
    tmp_path: Path, emu: EmulatorThread
) -> None:
    import pty

    manifest = tmp_path / "m.csv"
    manifest.write_text("model,precision\nm1,fp8\nm2,fp8\nm1,fp8\nm3,fp9\nm4,bf16\n")
    leader, follower = pty.openpty()
    env = dict(env_for(emu), COLUMNS="100", TERM="xterm")
    with subprocess.Popen(
        [sys.executable, "-m", "fwprep", "batch", str(manifest)],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
    ) as proc:
        os.close(follower)
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            screen += chunk
        proc.wait()
    os.close(leader)
    text = screen.decode(errors="replace")
    assert proc.returncode == 1  # the invalid row
    assert "5/5" in text  # 3 items, 1 duplicate and 1 invalid row: 5 records planned and written


def test_throttle_timeout_fails_an_item_only_after_that_long_of_429s(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 2)
    with EmulatorThread(rpm=1) as emu:  # one request a minute: the second item meets only 429s
        result = fwprep(
            "batch",
            str(manifest),
            "-j",
            "1",
            "--throttle-timeout",
            "1s",
            "-o",
            "json",
            "-q",
            env=env_for(emu),
        )
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"ok": 1, "failed": 1}
    (error,) = summary["top_errors"]
    assert error["type"] == "RateLimitError"
    assert "with no request succeeding (throttle_timeout=1 s)" in error["message"]
    assert emu.stats.statuses[429] >= 2  # retried, not failed at the first 429


@pytest.mark.parametrize("wait", [False, True], ids=["no-wait", "wait"])
def test_a_resumed_dry_run_and_the_run_agree_on_every_status(
    tmp_path: Path, emu: EmulatorThread, wait: bool
) -> None:
    # A journal with an item in every status a run leaves behind, and a manifest
    # naming each of them, two new items, a duplicate row and an invalid one.
    manifest, report = tmp_path / "m.csv", tmp_path / "m.report.jsonl"
    left = ["started", "accepted", "ok", "failed", "skipped", "interrupted"]
    rows = [f"m-{status},fp8" for status in left] + [
        "new-1,fp8",
        "new-2,fp8",
        "new-1,fp8",
        "BAD,fp8",
    ]
    manifest.write_text("model,precision\n" + "\n".join(rows) + "\n")
    records = [
        Record(
            key=f"accounts/acme/models/m-{status}@FP8",
            status=status,  # type: ignore[arg-type]
            model=f"accounts/acme/models/m-{status}",
            precision="FP8",
            source=str(manifest),
            line=line,
            error=ErrorInfo("ApiError", "INTERNAL", "boom") if status == "failed" else None,
        )
        for line, status in enumerate(left, start=2)
    ]
    report.write_text("".join(record.to_line() + "\n" for record in records))
    env = env_for(emu)
    if wait:  # the accepted item was prepared: waiting on it ends
        assert fwprep("prepare", "m-accepted", "-p", "fp8", env=env).returncode == 0
    flags = [str(manifest), "--report", str(report), "--resume", "-o", "json"]
    flags += ["--wait", "--poll-interval", "0.1"] if wait else []
    planned = fwprep("batch", *flags, "--dry-run", env=env)
    plan = json.loads(planned.stdout)
    before = sum(emu.stats.prepare_requests.values())
    ran = fwprep("batch", *flags, "-q", env=env)
    summary = json.loads(ran.stdout)
    sent = sum(emu.stats.prepare_requests.values()) - before
    # started, failed, interrupted and the two new items are sent; ok and skipped are
    # done; accepted is waited on with --wait and done without.
    assert (plan["to_send"], plan["to_wait"], plan["already_done"]) == (
        (5, 1, 2) if wait else (5, 0, 3)
    )
    assert plan["to_send"] == sent
    assert plan["already_done"] == summary["already_done"]
    assert plan["to_send"] + plan["to_wait"] == summary["counts"]["ok"]
    assert plan["duplicates"] == summary["counts"]["duplicate"] == 1
    assert plan["invalid"] == summary["counts"]["invalid"] == 1
