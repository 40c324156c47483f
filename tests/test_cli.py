from __future__ import annotations

import json

import pytest
from support import run_cli

from fwprep.cli import main, parse_duration

run = run_cli


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45", 45.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("1h30m", 5400.0),
        ("2.5m", 150.0),
        ("1h", 3600.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5", "1m1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_prepare_and_wait_against_the_emulator(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "prepare", "my-model", "-p", "fp8", "--wait", "--emulate", "--poll-interval", "0.05"
    )
    assert code == 0
    assert out == "accounts/demo/models/my-model: FP8 is ready\n"
    assert "--emulate: talking to a local Fireworks emulator" in err


def test_prepare_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "prepare", "accounts/acme/models/m", "-p", "bf16", "--emulate", "-o", "json"
    )
    assert code == 0
    assert json.loads(out) == {
        "model": "accounts/acme/models/m",
        "precision": "BF16",
        "status": "ok",
        "attempts": 1,
        "http_status": 200,
        "ready": None,
    }


def test_dry_run_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prepare", "m", "-a", "acme", "-p", "fp8", "--dry-run")
    assert code == 0
    assert out == 'would send: POST /v1/accounts/acme/models/m:prepare {"precision": "FP8"}\n'


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["prepare", "m", "-p", "fp9", "--emulate"], "unknown precision 'fp9'; did you mean FP8"),
        (["prepare", "My_Model", "--emulate"], "invalid model id 'My_Model'"),
        (["prepare", "m"], "has no account"),
        (["prepare", "accounts/a/models/m"], "no Fireworks API key"),
        (
            ["prepare", "m", "-a", "a", "--api-key", "k", "--base-url", "http://example.com"],
            "refusing to send the API key over plain http://",
        ),
        (["prepare", "m", "--wait", "--emulate"], "--wait needs a precision"),
        (["prepare", "m", "--wait-timeout", "soon", "--emulate"], "not a duration"),
        (["emulator", "--fault-rate", "2"], "must be a probability"),
    ],
)
def test_bad_input_is_exit_2_with_a_message_and_no_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_a_failed_prepare_is_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "prepare",
        "accounts/a/models/m",
        "-p",
        "fp8",
        "--api-key",
        "k",
        "--base-url",
        "http://127.0.0.1:9",
        "--retries",
        "0",
    )
    assert code == 1
    assert out == ""  # a failure is said on stderr
    assert "prepare failed" in err
    assert "cannot connect to 127.0.0.1:9" in err


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["prepare", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    assert "FIREWORKS_API_KEY" in out


@pytest.mark.parametrize(
    ("options", "shared"),
    [
        ([], False),
        (["--shard", "1/1"], False),
        (["--shard", "2/4"], True),
        (["--shared"], True),
    ],
)
def test_shards_and_shared_runs_tell_the_limiter_the_account_is_shared(
    options: list[str], shared: bool
) -> None:
    from fwprep import AdaptiveRateLimiter
    from fwprep.batch.admit import Shard
    from fwprep.cli import build_parser
    from fwprep.cli.batch import pace

    args = build_parser().parse_args(["batch", "m.csv", *options])
    rates = pace(args, Shard.parse(args.shard) if args.shard else None)
    limiter = rates.get("limiter")
    assert (isinstance(limiter, AdaptiveRateLimiter) and limiter.shared) == shared
    assert "max_rps" not in rates


def test_a_fixed_rate_is_one_share_and_takes_no_shared_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fwprep.batch.admit import Shard
    from fwprep.cli import build_parser
    from fwprep.cli.batch import pace

    args = build_parser().parse_args(["batch", "m.csv", "--shard", "2/4", "--max-rpm", "300"])
    assert pace(args, Shard.parse(args.shard)) == {"max_rps": 5.0}
    code, _, err = run(capsys, "batch", "m.csv", "--max-rpm", "300", "--shared")
    assert code == 2
    assert "not allowed with argument" in err
