"""The guard rails a new user meets in the first hour: files, stops, arguments, streams.

Each test here failed before its rule held. The rules:
- a report is never read as a manifest, nor appended to unless it is a fwprep report (or empty);
- a stop sends nothing more: an item whose request has not left is recorded ``interrupted``;
- every public entry point checks what it is given and names the argument;
- every command exits with a code its ``--help`` lists, errors on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from support import FakeApi, fwprep, run_cli

import fwprep as api
from fwprep import (
    ConfigError,
    FireworksClient,
    InputError,
    PrepareItem,
    Request,
    Response,
    Waiter,
)
from fwprep.batch import BatchRunner, Record, iter_batch, read_report, run_batch
from fwprep.batch.progress import Progress
from fwprep.cli import main
from fwprep.cli.emulator import export_line
from fwprep.emulator import Emulator, EmulatorConfig, EmulatorThread

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = (REPO / "batch_examples" / "quickstart.csv").read_text()


run = run_cli


def plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FIREWORKS_")}


# -- a report is never read back as a manifest ---------------------------------------------------


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.csv").write_text(QUICKSTART)
    return tmp_path


@pytest.mark.parametrize("spelling", ["q.csv", "./q.csv", "link.csv", "{here}/q.csv"])
def test_a_report_that_is_also_a_manifest_is_refused(
    here: Path, capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    (here / "link.csv").symlink_to(here / "q.csv")
    code, _, err = run(
        capsys, "batch", "q.csv", "--emulate", "-q", "--report", spelling.format(here=here)
    )
    assert code == 2
    assert "is also a manifest (q.csv)" in err
    assert "--emulate: talking" not in err  # refused before the emulator (or any API) starts
    assert (here / "q.csv").read_text() == QUICKSTART


def test_a_glob_that_catches_the_default_report_is_refused(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "models.jsonl").write_text('{"model": "m1", "precision": "fp8"}\n')
    assert run(capsys, "batch", "models.jsonl", "--emulate", "-q")[0] == 0
    before = (here / "models.jsonl.report.jsonl").read_bytes()
    code, _, err = run(capsys, "batch", *sorted(str(p.name) for p in here.glob("models*")))
    assert code == 2
    assert "is also a manifest" in err
    assert (here / "models.jsonl.report.jsonl").read_bytes() == before
    # With a report of its own, the old report is still no manifest.
    code, _, err = run(
        capsys, "batch", "models.jsonl", "models.jsonl.report.jsonl", "--report", "new.jsonl"
    )
    assert code == 2
    assert "models.jsonl.report.jsonl:1: a fwprep report, not a manifest" in err
    assert not (here / "new.jsonl").exists()


def test_standard_input_redirected_from_the_report_is_refused(here: Path) -> None:
    report = here / "r.jsonl"
    report.write_text(
        '{"key":"accounts/demo/models/m1@FP8","status":"ok","source":"m.csv","line":2,'
        '"ts":"2026-12-07T00:00:00.000Z"}\n'
    )
    before = report.read_bytes()
    with report.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "fwprep", "batch", "-", "--report", "r.jsonl", "--emulate"],
            stdin=stdin,
            capture_output=True,
            text=True,
            cwd=here,
            env=plain_env(),
            timeout=60,
        )
    assert result.returncode == 2, result.stderr
    assert "is also a manifest (standard input)" in result.stderr
    assert report.read_bytes() == before


def test_a_file_that_is_not_a_report_is_never_appended_to(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "v.csv").write_text("model\nx\n")
    (here / "victim.csv").write_text("hello\n")
    code, _, err = run(
        capsys, "batch", "v.csv", "-p", "fp8", "--emulate", "-q", "--report", "victim.csv"
    )
    assert code == 2
    assert "victim.csv exists and is not a fwprep report" in err
    assert (here / "victim.csv").read_text() == "hello\n"
    (here / "empty.jsonl").write_text("")  # an empty file is a report yet to be written
    code, _, _ = run(
        capsys, "batch", "v.csv", "-p", "fp8", "--emulate", "-q", "--report", "empty.jsonl"
    )
    assert code == 0
    assert [r.status for r in read_report(["empty.jsonl"]).last.values()] == ["ok"]


def test_no_report_is_created_when_nothing_can_be_sent(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "v.csv").write_text("model,precision\naccounts/a/models/x,fp8\n")
    code, _, err = run(capsys, "batch", "v.csv")  # no API key
    assert code == 2
    assert "no Fireworks API key" in err
    assert not (here / "v.csv.report.jsonl").exists()


def test_shards_write_reports_of_their_own_that_report_merges(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "m.txt").write_text("".join(f"m{i}\n" for i in range(12)))
    for k in (1, 2, 3):
        code, _, err = run(
            capsys, "batch", "m.txt", "-p", "fp8", "--shard", f"{k}/3", "--emulate", "-q"
        )
        assert code == 0, err
    reports = sorted(p.name for p in here.glob("*.report.jsonl"))
    assert reports == [f"m.txt.shard-{k}-of-3.report.jsonl" for k in (1, 2, 3)]
    code, out, _ = run(capsys, "report", "m.txt.shard-*.report.jsonl", "-o", "json")  # quoted glob
    assert code == 0
    assert json.loads(out)["counts"] == {"ok": 12}


# -- a stop sends nothing more -------------------------------------------------------------------


async def test_a_stop_sends_nothing_that_has_not_left() -> None:
    items = [(f"accounts/acme/models/m{i}", "fp8") for i in range(6)]
    stop = asyncio.Event()
    async with Emulator() as emu:
        # Two a second, sixteen at a time: five items wait for the limiter when the first ends.
        async with FireworksClient(emu.api_key, base_url=emu.base_url, max_rps=2.0) as client:
            records = []
            async with contextlib.aclosing(
                iter_batch(items=items, client=client, stop=stop, grace=5)
            ) as batch:
                async for record in batch:
                    records.append(record)
                    if not stop.is_set():
                        sent_at_stop = emu.stats.requests
                        stop.set()
        sent = emu.stats.requests
    statuses = Counter(r.status for r in records)
    assert sent == sent_at_stop == statuses["ok"]
    assert statuses["ok"] + statuses["interrupted"] == 6
    assert statuses["interrupted"] >= 4
    for record in records:
        if record.status == "interrupted":
            assert record.error is not None
            assert record.error.message == "not sent: the stop event"


async def test_a_refused_key_sends_no_request_waiting_for_the_limiter() -> None:
    items = [(f"accounts/acme/models/m{i}", "fp8") for i in range(5)]
    async with Emulator(api_key="the-right-key") as emu:
        async with FireworksClient("a-wrong-key", base_url=emu.base_url, max_rps=2.0) as client:
            summary = await run_batch(items=items, client=client)
    assert emu.stats.requests == 1  # the others were waiting for their turn: never sent
    assert summary.counts == {"failed": 1, "interrupted": 4}
    assert summary.exit_code == 3


def test_ctrl_c_sends_nothing_more_and_the_report_agrees(tmp_path: Path) -> None:
    (tmp_path / "six.txt").write_text("".join(f"m{i}\n" for i in range(6)))
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fwprep",
            "batch",
            "six.txt",
            "-p",
            "fp8",
            "--emulate",
            "--max-rpm",
            "60",
            "-v",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=plain_env() | {"PYTHONUNBUFFERED": "1"},
    ) as proc:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "-> 200" in line:  # the first request is answered: stop
                proc.send_signal(2)
                break
        lines += proc.stderr.readlines()
    assert proc.returncode == 130
    stopped = next(i for i, line in enumerate(lines) if "SIGINT: sending nothing more" in line)
    assert not any("POST" in line for line in lines[stopped:])
    report = fwprep("report", "six.txt.report.jsonl", env=plain_env(), cwd=tmp_path)
    assert report.returncode == 1  # not complete: the report says what the summary said
    posts = sum("POST" in line for line in lines)
    assert f"{posts} ok" in report.stdout
    assert f"{6 - posts} interrupted" in report.stdout


async def test_a_stop_between_retries_sends_no_retry() -> None:
    api_ = FakeApi()
    api_.post(re.compile(":prepare$"), status=503, repeat=True)
    runner: BatchRunner | None = None

    async def answer_then_stop(request: Request) -> Response:
        response = await api_(request)
        assert runner is not None
        runner.stop("SIGINT")  # the answer is a 503: the exchange would retry
        return response

    records: list[Record] = []
    async with FireworksClient("k", transport=answer_then_stop) as client:
        runner = BatchRunner(client, on_record=records.append)
        summary = await runner.run([PrepareItem("accounts/acme/models/x", "fp8")])
    assert sum(len(calls) for calls in api_.requests.values()) == 1
    assert summary.counts == {"interrupted": 1}
    assert records[0].error is not None
    assert records[0].error.message == "stopped by SIGINT"  # a request had left: not "not sent"


# -- public entry points check their arguments ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"manifests": "m.csv", "items": [("a", "fp8")]}, ConfigError, "not both"),
        ({}, ConfigError, "nothing to run"),
        ({"items": "accounts/acme/models/x"}, InputError, "items must be an iterable"),
        ({"items": [], "precisions": "fp8"}, InputError, "precisions must be a sequence"),
        ({"items": [], "format": "csv"}, ConfigError, "format= applies to manifests"),
    ],
)
async def test_run_batch_refuses_what_it_would_ignore(
    here: Path, kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    (here / "m.csv").write_text("model\naccounts/acme/models/x\n")
    client = FireworksClient("k", base_url="http://127.0.0.1:9")
    with pytest.raises(error, match=words):
        await run_batch(client=client, **kwargs)
    assert sorted(os.listdir(here)) == ["m.csv", "q.csv"]  # no report written


async def test_items_take_the_precisions_given_like_manifest_rows() -> None:
    items: list[Any] = [
        ("accounts/acme/models/a", None),
        PrepareItem("accounts/acme/models/b"),
        ("accounts/acme/models/c", "bf16"),
    ]
    async with Emulator() as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            summary = await run_batch(items=items, client=client, precisions=["fp8", "fp4"])
    assert summary.counts == {"ok": 5}
    assert set(emu.stats.prepare_successes) == {
        "accounts/acme/models/a@FP8",
        "accounts/acme/models/a@FP4",
        "accounts/acme/models/b@FP8",
        "accounts/acme/models/b@FP4",
        "accounts/acme/models/c@BF16",
    }


async def test_a_prepare_item_reads_a_model_name_as_text() -> None:
    item = PrepareItem("accounts/acme/models/x", "fp8")
    assert item.model == api.ModelRef("acme", "x")
    assert item.key == "accounts/acme/models/x@FP8"
    with pytest.raises(InputError, match="has no account"):
        PrepareItem("x", "fp8")
    async with Emulator() as emu:
        async with FireworksClient(emu.api_key, base_url=emu.base_url) as client:
            summary = await run_batch(items=[item], client=client)
    assert summary.counts == {"ok": 1}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"timeout": -1.0, "poll_interval": 1.0}, "timeout must be"),
        ({"timeout": 10.0, "poll_interval": math.nan}, "poll_interval must be"),
        ({"timeout": math.inf, "poll_interval": 1.0}, "timeout must be"),
        ({"timeout": 10.0, "poll_interval": 1.0, "sending_share": 0.0}, "sending_share"),
    ],
)
def test_a_waiter_checks_its_settings(kwargs: dict[str, Any], words: str) -> None:
    client = FireworksClient("k", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=words):
        Waiter(client, **kwargs)


def test_the_emulator_takes_one_key_as_api_key_and_refuses_text_as_keys() -> None:
    with pytest.raises(ValueError, match="api_keys must be a sequence of keys"):
        Emulator(api_keys="secret-key")
    assert Emulator(api_key="secret-key").api_key == "secret-key"
    assert Emulator(api_key="secret-key").config.api_keys == ("secret-key",)
    with pytest.raises(ValueError, match="burst must be a finite number of requests >= 1"):
        EmulatorConfig(rpm=60, burst=0)


def test_the_export_line_is_quoted_for_the_shell() -> None:
    line = export_line("http://127.0.0.1:8765", "my key;$(id)", "demo")
    assert shlex.split(line) == [
        "export",
        "FIREWORKS_BASE_URL=http://127.0.0.1:8765",
        "FIREWORKS_API_KEY=my key;$(id)",
        "FIREWORKS_ACCOUNT_ID=demo",
    ]


def test_the_progress_bar_counts_an_invalid_row_apart_from_failures() -> None:
    progress = Progress(2, quiet=True)
    progress(Record(None, "invalid", None, None, "m.csv", 3))
    assert progress.notes() == "1 invalid"


# -- the pytest fixture: one account ---------------------------------------------------------------


FIXTURE_TESTS = """
import subprocess, sys
import pytest
from fwprep import FireworksClient

@pytest.mark.fireworks_emulator(models=3)
async def test_models(fireworks_emulator):
    assert fireworks_emulator.config.catalog is not None
    async with FireworksClient() as client:
        names = [m.name async for m in client.list_models()]
        outcome = await client.prepare_model("m0", "fp8")
    assert names == [f"accounts/test-account/models/m{i}" for i in range(3)]
    assert outcome.http_status == 200
    shell = subprocess.run([sys.executable, "-m", "fwprep", "prepare", "m1", "-p", "fp8"])
    assert shell.returncode == 0

@pytest.mark.fireworks_emulator(models=2, account_id="team")
async def test_another_account(fireworks_emulator):
    async with FireworksClient() as client:
        assert [m.name async for m in client.list_models()][0] == "accounts/team/models/m0"

@pytest.mark.fireworks_emulator(api_key="secret-key")
def test_one_key(fireworks_emulator):
    import os
    assert os.environ["FIREWORKS_API_KEY"] == "secret-key"

@pytest.mark.fireworks_emulator(models="other.jsonl")
def test_a_catalogue_of_one_account(fireworks_emulator):
    import os
    assert os.environ["FIREWORKS_ACCOUNT_ID"] == "other"

@pytest.mark.fireworks_emulator(models="other.jsonl", account_id="mine")
def test_an_account_given(fireworks_emulator):
    import os
    assert os.environ["FIREWORKS_ACCOUNT_ID"] == "mine"

@pytest.mark.fireworks_emulator(600)
def test_positional(fireworks_emulator):
    pass

@pytest.mark.fireworks_emulator(rmp=600)
def test_misspelt(fireworks_emulator):
    pass
"""


def test_the_fixture_exports_the_account_its_catalogue_is_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixture=FIXTURE_TESTS)
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    (pytester.path / "other.jsonl").write_text('{"name": "accounts/other/models/m0"}\n')
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*fireworks_emulator takes keyword settings only (rpm=600, models=50, ...), got (600,)*",
            "*@pytest.mark.fireworks_emulator: *rmp*",
        ]
    )


# -- every command: documented exit codes, errors on stderr, no traceback -------------------------


def documented_codes(command: str) -> set[int]:
    """The exit codes a command's --help lists."""
    parser = main.__globals__["build_parser"]()
    help_text = parser._subparsers._group_actions[0].choices[command].format_help()
    codes = help_text.split("exit codes", 1)[1].split("\n\n", 1)[0]
    return {int(line.split()[0]) for line in codes.splitlines()[1:] if line.strip()}


def test_prepare_exits_with_the_codes_its_help_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert documented_codes("prepare") == {0, 1, 2, 3, 130}
    with EmulatorThread(api_key="the-right-key") as emu:
        code, out, err = run(
            capsys,
            "prepare",
            "accounts/acme/models/x",
            "-p",
            "fp8",
            "--api-key",
            "a-wrong-key",
            "--base-url",
            emu.base_url,
        )
    assert code == 3  # the key was refused
    assert out == ""
    assert "prepare failed" in err
    assert "a-wrong-key" not in err
    code, _, err = run(capsys, "prepare", "x", "-p", "fp8", "--wait", "--wait-timeout", "0")
    assert code == 2
    assert "argument --wait-timeout: must be more than 0" in err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (QUICKSTART.encode(), "is not a fwprep report"),
        (bytes(range(256)) * 8, "is not a fwprep report"),
        (b"", "no record in"),
        (b"\n\n", "no record in"),
    ],
)
def test_report_refuses_what_is_not_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    code, out, err = run(capsys, "report", str(path), "-o", "json")
    assert code == 2
    assert out == ""
    assert words in err
    assert path.read_bytes() == content


def test_an_overlong_value_is_cut_in_messages_and_records(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "big.txt").write_text("a" * 3_000_000 + "\n")
    (here / "big.jsonl").write_text(json.dumps({"model": "b" * 3_000_000}) + "\n")
    for name in ("big.txt", "big.jsonl"):
        code, _, err = run(capsys, "batch", name, "-p", "fp8", "--emulate")
        assert code == 1
        assert f"{name}:1: model is 3000000 characters long, more than the 1024" in err
        assert len(err) < 2_000
        assert (here / f"{name}.report.jsonl").stat().st_size < 2_000


def test_a_json_lines_row_that_names_a_key_twice_is_invalid(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "m.jsonl").write_text('{"model": "m1", "model": "m2", "precision": "fp8"}\n')
    code, _, err = run(capsys, "batch", "m.jsonl", "--emulate")
    assert code == 1
    assert "m.jsonl:1: key 'model' appears twice in the object" in err


def test_p_says_nothing_of_a_manifest_without_rows(
    here: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (here / "empty.csv").write_text("model\n")
    code, _, err = run(capsys, "batch", "empty.csv", "-p", "fp8", "--emulate", "-q")
    assert code == 0
    assert "changed nothing" not in err
    (here / "named.csv").write_text("model,precision\nm1,bf16\n")
    code, _, err = run(capsys, "batch", "named.csv", "-p", "fp8", "--emulate", "-q")
    assert "-p FP8 changed nothing" in err


def test_models_takes_o_json_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--emulate", "-o", "json", "--limit", "2")
    assert code == 0
    assert [json.loads(line)["model"] for line in out.splitlines()] == [
        json.loads(line)["model"]
        for line in run(capsys, "models", "--emulate", "-o", "jsonl", "--limit", "2")[
            1
        ].splitlines()
    ]


@pytest.mark.parametrize("command", ["batch", "prepare", "models", "report", "emulator"])
def test_every_option_has_help(command: str) -> None:
    parser = main.__globals__["build_parser"]()
    sub = parser._subparsers._group_actions[0].choices[command]
    bare = [a.option_strings for a in sub._actions if a.option_strings and not a.help]
    assert bare == []


SHELL_CASES = [
    ("batch - -p fp8 --emulate <&-", 2, "fwprep: error: -: standard input is closed"),
    ("models --emulate -o csv >&-", 2, "fwprep: error: standard output is closed"),
    ("models --emulate -o csv >/dev/full", 1, "fwprep: error: cannot write the output: No space"),
    ("batch m.txt -p fp8 --emulate -q -o json >/dev/full", 1, "cannot write the output"),
    ("report m.txt.report.jsonl >/dev/full", 1, "fwprep: error: cannot write the output"),
    ("emulator --port 99999", 2, "argument --port: a port is 0 to 65535, got 99999"),
    ("emulator --port 0 --fault-rate 1 --stall-rate 0.5", 2, "fault probabilities add up to 1.5"),
    ("emulator --burst 0.5", 2, "argument --burst: must be at least 1 request"),
]


@pytest.mark.parametrize(("command", "code", "words"), SHELL_CASES)
def test_closed_and_full_streams_end_in_one_line(
    tmp_path: Path, command: str, code: int, words: str
) -> None:
    (tmp_path / "m.txt").write_text("m1\n")
    if "report" in command:
        assert (
            fwprep(
                "batch", "m.txt", "-p", "fp8", "--emulate", "-q", env=plain_env(), cwd=tmp_path
            ).returncode
            == 0
        )
    python = shlex.quote(sys.executable)
    result = subprocess.run(
        ["sh", "-c", f"exec {python} -m fwprep {command}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=plain_env(),
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("fwprep")


# -- fuzzing the command line: a result or a one-line error, never a file it reads grown ----------

REPORT_LINE = (
    '{"key":"accounts/demo/models/m1@FP8","status":"ok","source":"m.txt","line":1,'
    '"ts":"2026-12-07T00:00:00.000Z"}\n'
)
FILES = {
    "q.csv": QUICKSTART,
    "m.txt": "m1\nm2\n# a comment\naccounts/demo/models/m3\n",
    "m.jsonl": '{"model": "m4", "precision": "fp8"}\n{"model": 5}\n',
    "m.txt.report.jsonl": REPORT_LINE,
    "empty.csv": "",
    "junk.bin": "\x00\x01\xff not text",
}
PATHS = [*FILES, "link.csv", "missing.csv", "*.report.jsonl", "m*"]
VALUES = {  # each option's good values, then its bad ones
    "-p": (["fp8", "FP4"], ["fp9", ""]),
    "--report": (["r.jsonl", "m.txt.report.jsonl", "empty.csv"], PATHS),
    "-o": (["text", "json", "csv", "jsonl", "table"], ["yaml"]),
    "--shard": (["1/2", "2/2"], ["0/2", "3/2", "x", "auto"]),
    "-j": (["1", "4"], ["0", "-3", "x"]),
    "--max-rpm": (["6000"], ["0", "nan", "-1"]),
    "--wait-timeout": (["1s"], ["0", "-5", "forever"]),
    "--poll-interval": (["0.1"], ["0", "nan"]),
    "--format": (["csv", "text", "jsonl"], ["toml", "xml"]),
    "--max-failures": (["1"], ["0"]),
    "--limit": (["1"], ["0"]),
    "--kind": (["hf-peft-addon"], ["nope"]),
    "--missing": (["fp8"], ["fp9"]),
    "--grace": (["0", "1s"], ["x"]),
}
FLAGS = ["--resume", "--dry-run", "--strict", "--check", "-q", "--shared", "--help"]
OPTIONS = {
    "batch": [
        "-p",
        "--report",
        "-o",
        "--shard",
        "-j",
        "--max-rpm",
        "--format",
        "--max-failures",
        "--grace",
        "--wait-timeout",
    ],
    "report": ["-o"],
    "prepare": ["-p", "-o", "--wait-timeout", "--poll-interval"],
    "models": ["-o", "--limit", "--kind", "--missing"],
}
ALLOWED_FLAGS = {
    "batch": FLAGS,
    "report": ["--help"],
    "prepare": ["--dry-run", "--help"],
    "models": ["--help"],
}


@st.composite
def invocations(draw: st.DrawFn) -> list[str]:
    """Mostly good command lines, each with a few bad words in it now and then."""
    command = draw(st.sampled_from(sorted(OPTIONS)))
    words: list[str] = [command]
    positional = {"batch": PATHS, "report": PATHS, "prepare": ["m1", "accounts/a/models/m", "-x"]}
    if command in positional:
        most = 1 if command == "prepare" else 3
        words += draw(st.lists(st.sampled_from(positional[command]), min_size=1, max_size=most))
    for _ in range(draw(st.integers(0, 3))):
        option = draw(st.sampled_from(OPTIONS[command] + ALLOWED_FLAGS[command]))
        words.append(option)
        if option in VALUES:
            good, bad = VALUES[option]
            words.append(draw(st.sampled_from(bad if draw(st.integers(0, 4)) == 0 else good)))
    if command != "report" and draw(st.integers(0, 4)) > 0:
        words.append("--emulate")
    return words


@settings(  # FWPREP_FUZZ_EXAMPLES=2000 for a deeper run by hand
    max_examples=int(os.environ.get("FWPREP_FUZZ_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=invocations())
@example(
    argv=[
        "batch",
        "q.csv",
        "--report",
        "q.csv",
        "-p",
        "fp8",
        "--report",
        "m.txt.report.jsonl",
        "--emulate",
    ]
)
def test_fuzzed_command_lines(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("cli")
    for name, text in FILES.items():
        (folder / name).write_bytes(text.encode("utf-8", "surrogateescape"))
    (folder / "link.csv").symlink_to(folder / "q.csv")
    with contextlib.chdir(folder):
        if argv[0] != "report":  # as a shell expands them (report expands a quoted one itself)
            argv = [m for w in argv for m in (sorted(glob.glob(w)) or [w])]
        sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
        code, _out, err = run(capsys, *argv)
        after = {path.name: path.stat().st_size for path in folder.iterdir()}
    command = argv[0]
    event(f"{command} exit {code}")
    assert "Traceback" not in err, argv
    assert code in documented_codes(command), (argv, code, err)
    if code == 2 and "--help" not in argv:
        last = err.strip().splitlines()[-1]
        assert last.startswith(("fwprep: error: ", f"fwprep {command}: error: ")), (argv, err)
    # A file read is never grown: every manifest of batch, and every file report reads.
    read = [w for w in argv[1:] if w in FILES or w == "link.csv"] if command != "prepare" else []
    # An option given twice takes its last value, as argparse and most tools do.
    given_reports = [argv[i + 1] for i, w in enumerate(argv[:-1]) if w == "--report"]
    written = given_reports[-1] if given_reports else None
    for name in read:
        if name != written or command == "report":
            target = "q.csv" if name == "link.csv" else name
            assert after[target] == sizes[target], (argv, name)
