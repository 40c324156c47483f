"""The batch and report commands, run as a user runs them: in a subprocess."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fwprep.batch import read_report
from fwprep.emulator import EmulatorThread, Faults

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread() as e:
        yield e


def env_for(e: EmulatorThread, key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}
    env.update(
        FIREWORKS_API_KEY=key or e.api_key,
        FIREWORKS_BASE_URL=e.base_url,
        FIREWORKS_ACCOUNT_ID="acme",
        PYTHONUNBUFFERED="1",
    )
    return env


def fwprep(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fwprep", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def write_manifest(path: Path, count: int) -> Path:
    with path.open("w") as fh:
        fh.write("model,precision\n")
        for i in range(count):
            fh.write(f"m{i},fp8\n")
    return path


def final_statuses(report: Path) -> dict[str, str]:
    return {k: r.status for k, r in read_report([report]).last.items()}


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
    assert "1 x NotFoundError: gone" in result.stdout
    missing = fwprep("report", str(tmp_path / "nope.jsonl"), env=env_for(emu))
    assert missing.returncode == 2
    assert "cannot read the report" in missing.stderr


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition another process makes true (a file growing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_gracefully_with_the_report_flushed(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    manifest = write_manifest(tmp_path / "m.csv", 200)
    report = Path(f"{manifest}.report.jsonl")
    with EmulatorThread(faults=Faults(latency_ms=30_000)) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fwprep", "batch", str(manifest), "-j", "4", "--grace", "0.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(emu),
        )
        with proc:
            emu.wait_until(lambda stats: stats.in_flight == 4)
            sent_at = time.monotonic()
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=30)
            took = time.monotonic() - sent_at
    assert proc.returncode == code
    assert took < 0.5 + 2.0
    assert "starting no new items" in stderr
    assert f"interrupted by {sig.name}; rerun with --resume" in stderr
    assert "Traceback" not in stderr
    statuses = Counter(final_statuses(report).values())
    assert statuses == {"interrupted": 4}


def test_resume_after_kill_9_finishes_without_repeating_work(tmp_path: Path) -> None:
    items, concurrency, kills = 600, 8, 3
    manifest = write_manifest(tmp_path / "m.csv", items)
    report = Path(f"{manifest}.report.jsonl")
    rng = random.Random(20261126)
    with EmulatorThread(faults=Faults(latency_ms=2)) as emu:
        command = [
            sys.executable,
            "-m",
            "fwprep",
            "batch",
            str(manifest),
            "-j",
            str(concurrency),
            "-q",
            "--resume",
        ]
        for _ in range(kills):
            already = lines_in(report)
            target = already + rng.randint(20, 300)
            with subprocess.Popen(
                command, env=env_for(emu), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ) as proc:
                wait_for(lambda t=target, p=proc: lines_in(report) >= t or p.poll() is not None)
                proc.kill()
                proc.wait()
        result = subprocess.run(
            command, env=env_for(emu), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        total_prepares = sum(emu.stats.prepare_requests.values())
    statuses = final_statuses(report)
    assert len(statuses) == items
    assert set(statuses.values()) == {"ok"}
    assert total_prepares <= items + kills * concurrency
    for line in report.read_text().splitlines():
        json.loads(line)  # every line parses: torn tails were cut before appending
