"""Fuzzed manifests through the real command: never a traceback, every bad row named, good rows run."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fwprep import FireworksClient, InvalidPrecisionError, ModelRef
from fwprep._protocol import parse_error_body
from fwprep.cli import main
from fwprep.emulator import EmulatorThread
from fwprep.retry import parse_retry_after

TRIED: dict[str, int] = {
    "manifests": 0,
    "rows": 0,
    "error bodies": 0,
    "retry-after values": 0,
    "list pages": 0,
}

GOOD = "accounts/acme/models/known-good-{n}"

junk_lines = st.one_of(
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    st.text(max_size=120),
    st.text(alphabet='ab,"\r\t#-_é\x00{}[]:', max_size=200),
    st.sampled_from(
        [
            '"unterminated,fp8',
            "x" * 200_000,
            "m1,fp8,extra,columns",
            "ÜNICODE-ID,fp8",
            "mödel,fp8",
            ",",
            "model,precision",
            "\ufeffm1,fp8",
            "m1,FP8\r",
            "-bad-,fp8",
            "m1,fp99",
            "m1",
        ]
    ),
)

json_lines = st.one_of(
    junk_lines,
    st.dictionaries(
        st.sampled_from(["model", "precision", "read_mask", "modle", "extra"]),
        st.none()
        | st.integers()
        | st.booleans()
        | st.text(max_size=40)
        | st.lists(st.text(max_size=5), max_size=3),
        max_size=4,
    ).map(json.dumps),
)

toml_tables = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.one_of(st.text(max_size=20), st.integers(), st.just("ok-toml")),
            "precision": st.one_of(st.text(max_size=10), st.integers(), st.just("fp8")),
            "precisions": st.lists(st.one_of(st.text(max_size=6), st.integers()), max_size=3),
            "colour": st.text(max_size=5),
        },
    ),
    max_size=6,
)


def toml_value(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


@pytest.fixture(scope="module")
def server() -> Any:
    with EmulatorThread(record_requests=True) as emu:
        yield emu


def run_cli(
    path: Path, server: EmulatorThread, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    code = main(
        [
            "batch",
            str(path),
            "--api-key",
            server.api_key,
            "--base-url",
            server.base_url,
            "-a",
            "acme",
            "--report",
            str(path) + ".report.jsonl",
            "-q",
            *extra,
        ]
    )
    _, err = capsys.readouterr()
    return code, err


def check_run(path: Path, code: int, err: str, good: list[str], server: EmulatorThread) -> None:
    assert "Traceback" not in err
    assert code in (0, 1, 2), err
    report = Path(str(path) + ".report.jsonl")
    if code == 2:
        # The manifest as a whole was refused before anything ran, with path and reason.
        assert re.search(rf"fwprep: error: {re.escape(str(path))}(:\d+)?: ", err), err
        return
    for line in report.read_text().splitlines():
        record = json.loads(line)
        if record["status"] == "invalid":
            message = record["error"]["message"]
            assert message.startswith(f"{path}:{record['line']}: ")
    for model in good:
        assert server.stats.prepare_successes[f"{model}@FP8"] >= 1, model


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lines=st.lists(junk_lines, max_size=12),
    crlf=st.booleans(),
    bom=st.booleans(),
    seed=st.integers(0, 10**9),
)
def test_fuzzed_csv(
    tmp_path: Path,
    server: EmulatorThread,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    crlf: bool,
    bom: bool,
    seed: int,
) -> None:
    good = [GOOD.format(n=f"c{seed}-{i}") for i in range(2)]
    rows = ["model,precision", *lines[:6], f"{good[0]},fp8", *lines[6:], f"{good[1]},fp8"]
    newline = "\r\n" if crlf else "\n"
    data = newline.join(rows).encode("utf-8", "surrogatepass")
    path = tmp_path / f"fuzz-{seed}.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    code, err = run_cli(path, server, capsys)
    TRIED["manifests"] += 1
    TRIED["rows"] += len(rows) - 1
    # A junk row can swallow the next line (an open quote); the good rows then may not run.
    quoted = any('"' in line for line in lines)
    check_run(path, code, err, [] if quoted else good, server)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(json_lines, max_size=12), seed=st.integers(0, 10**9))
def test_fuzzed_jsonl(
    tmp_path: Path,
    server: EmulatorThread,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    seed: int,
) -> None:
    good = [GOOD.format(n=f"j{seed}")]
    rows = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    rows.insert(len(rows) // 2, json.dumps({"model": good[0], "precision": "fp8"}))
    path = tmp_path / f"fuzz-{seed}.jsonl"
    path.write_bytes("\n".join(rows).encode("utf-8", "surrogatepass"))
    code, err = run_cli(path, server, capsys)
    TRIED["manifests"] += 1
    TRIED["rows"] += len(rows)
    check_run(path, code, err, good, server)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(tables=toml_tables, seed=st.integers(0, 10**9), junk=st.none() | st.text(max_size=30))
def test_fuzzed_toml(
    tmp_path: Path,
    server: EmulatorThread,
    capsys: pytest.CaptureFixture[str],
    tables: list[dict[str, object]],
    seed: int,
    junk: str | None,
) -> None:
    good = GOOD.format(n=f"t{seed}")
    parts = ['account_id = "acme"', ""]
    last: dict[str, object] = {"model": good, "precision": "fp8"}
    for table in [*tables, last]:
        parts.append("[[prepare]]")
        parts.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
        parts.append("")
    if junk is not None:
        parts.append(junk)
    path = tmp_path / f"fuzz-{seed}.toml"
    path.write_text("\n".join(parts), encoding="utf-8", errors="surrogatepass")
    code, err = run_cli(path, server, capsys)
    TRIED["manifests"] += 1
    TRIED["rows"] += len(tables) + 1
    check_run(path, code, err, [good], server)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".toml"])
def test_empty_files(
    tmp_path: Path, server: EmulatorThread, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    code, err = run_cli(path, server, capsys)
    assert "Traceback" not in err
    assert code == (2 if suffix == ".csv" else 0), err
    if suffix == ".csv":
        assert f"{path}: empty manifest" in err


@settings(max_examples=500, deadline=None)
@given(
    status=st.integers(100, 599),
    body=st.binary(max_size=4000),
    ctype=st.none() | st.text(max_size=40),
)
def test_error_body_parser_takes_any_bytes(status: int, body: bytes, ctype: str | None) -> None:
    TRIED["error bodies"] += 1
    assert parse_error_body(status, body, ctype).message


@settings(max_examples=500, deadline=None)
@given(
    value=st.text(max_size=60) | st.from_regex(r"\A[0-9. ]{0,12}\Z"),
    ms=st.none() | st.text(max_size=12),
)
def test_retry_after_parser_takes_any_string(value: str, ms: str | None) -> None:
    TRIED["retry-after values"] += 1
    headers = {"Retry-After": value}
    if ms is not None:
        headers["retry-after-ms"] = ms
    result = parse_retry_after(headers)
    assert result is None or result >= 0


@given(text=st.text(max_size=80))
def test_model_and_precision_parsers_raise_only_their_documented_errors(text: str) -> None:
    from fwprep import InvalidModelError, Precision

    with contextlib.suppress(InvalidModelError):
        ModelRef.parse(text, "acme")
    with contextlib.suppress(InvalidPrecisionError):
        Precision.parse(text)


async def test_list_requests_keep_to_the_contract(server: EmulatorThread) -> None:
    # The account holds what the tests above prepared; the contract check of
    # every recorded request (list pages included) runs last, below.
    account = "listing"
    async with FireworksClient(
        server.api_key, base_url=server.base_url, account_id=account
    ) as client:
        for i in range(5):
            await client.prepare_model(f"m{i}", "fp8")
        plain = [m.name async for m in client.list_models()]
        shaped = [
            m.name
            async for m in client.list_models(
                page_size=2, order_by="name desc", read_mask="name,supportedPrecisions"
            )
        ]
    assert plain == [f"accounts/{account}/models/m{i}" for i in range(5)]
    assert shaped == plain[::-1]
    TRIED["list pages"] += 1 + 3


def test_zz_report_inputs_tried(
    figures: dict[str, Any], server: EmulatorThread, contract: Any
) -> None:
    contract.check(list(server.stats.received))
    figures["bad input"] = ", ".join(f"{n} {what}" for what, n in TRIED.items()) + (
        "; tracebacks: 0"
    )
