from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fwprep import Precision, PrepareItem
from fwprep.batch import InvalidRow, Manifest, ManifestError
from fwprep.batch.manifest import ManifestEntry, detect_format


def read(path: Path, account: str | None = "dflt", fmt: str | None = None) -> list[ManifestEntry]:
    with Manifest.open(str(path), fmt, account) as manifest:
        return list(manifest.entries())


def summary(entries: list[ManifestEntry]) -> list[tuple[str, int] | str]:
    out: list[tuple[str, int] | str] = []
    for e in entries:
        if isinstance(e, PrepareItem):
            assert e.line is not None
            out.append((e.key, e.line))
        else:
            out.append(str(e))
    return out


def test_csv_with_comments_blank_lines_crlf_bom_and_multiline_fields(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(
        b"\xef\xbb\xbf# a comment\r\n\r\nModel , precision,read_mask\r\n"
        b"accounts/a/models/m1,fp8,\r\n"
        b"  # indented comment\r\n"
        b"m2,BF16,name\r\n"
        b'"m3",fp8-mm\r\n'
        b'"bad\nid",fp8\r\n'
        b"m4,fp4\r\n"
        b",,\r\n"
    )
    entries = read(path)
    assert summary(entries) == [
        ("accounts/a/models/m1@FP8", 4),
        ("accounts/dflt/models/m2@BF16", 6),
        ("accounts/dflt/models/m3@FP8_MM", 7),
        f"{path}:8: invalid model id 'bad\\nid': it contains '\\n'; ids are 1-63 characters "
        "of a-z, 0-9 and '-', not starting or ending with '-'",
        ("accounts/dflt/models/m4@FP4", 10),
    ]
    second = entries[1]
    assert isinstance(second, PrepareItem)
    assert second.read_mask == "name"
    assert second.source == str(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("m1,fp9", "unknown precision 'fp9'; did you mean FP8 or FP4?"),
        ("My_Model,fp8", "invalid model id 'My_Model'"),
        (",fp8", "missing model"),
        ("m1,fp8,x,extra", "4 fields, but the header names 3 columns"),
        ('"m1,fp8', "malformed CSV: unexpected end of data"),
        ('"m1"x,fp8', "malformed CSV"),
        ("accounts/a/m1,fp8", "expected accounts/ACCOUNT_ID/models/MODEL_ID"),
    ],
)
def test_each_kind_of_bad_csv_row_names_its_line(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "m.csv"
    path.write_text(f"model,precision,read_mask\n# c\nok-1,fp8\n{row}\nok-2,fp8\n")
    entries = read(path)
    bad = [e for e in entries if isinstance(e, InvalidRow)]
    assert len(bad) == 1
    assert bad[0].line == 4
    assert str(bad[0]).startswith(f"{path}:4: ")
    assert message in str(bad[0])
    good = [e.key for e in entries if isinstance(e, PrepareItem)]
    assert "accounts/dflt/models/ok-1@FP8" in good
    assert "accounts/dflt/models/ok-2@FP8" in good or '"m1' in row


def test_non_utf8_row_is_invalid_and_the_rest_still_read(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"model\nm1\n\xff\xfe\nm2\n")
    assert summary(read(path)) == [
        ("accounts/dflt/models/m1", 2),
        f"{path}:3: the line is not valid UTF-8",
        ("accounts/dflt/models/m2", 4),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model,precison\nm,fp8\n", ":1: unknown column 'precison'"),
        ("# only a comment\n", "empty manifest"),
        ("", "empty manifest"),
        ("precision\nfp8\n", ":1: the header has no 'model' column"),
        ("model,model\nm\n", "column 'model' appears twice"),
    ],
)
def test_a_bad_csv_header_makes_the_manifest_unusable(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        Manifest.open(str(path))
    assert message in str(info.value)
    assert str(info.value).startswith(str(path))


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        '{"model": "accounts/a/models/j1", "precision": "FP8", "read_mask": "name"}',
        "",
        "[1, 2]",
        '{"model": 7}',
        '{"model": "j2", "precison": "fp8"}',
        "{oops",
        '{"model": "j3", "precision": null}',
        '{"model": "j4", "precision": 8}',
        '"just a string"',
    ]
    path.write_text("\n".join(lines) + "\n")
    assert summary(read(path)) == [
        ("accounts/a/models/j1@FP8", 1),
        f"{path}:3: expected a JSON object, got an array",
        f"{path}:4: model must be a string, got int 7",
        f"{path}:5: unknown key 'precison' (expected model, precision, read_mask)",
        f"{path}:6: invalid JSON: Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)",
        ("accounts/dflt/models/j3", 7),
        f"{path}:8: precision must be a string, got int 8",
        f"{path}:9: expected a JSON object, got a string",
    ]


def test_toml_expands_precisions_and_uses_its_own_account(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        'account_id = "acme"\n\n'
        '[[prepare]]\nmodel = "t1"\nprecisions = ["fp8", "fp4", "nope"]\n\n'
        '[[prepare]]\nmodel = "accounts/other/models/t2"\nprecision = "bf16"\n\n'
        '[[prepare]]\nmodel = "t3"\nprecision = "bf16"\nprecisions = ["fp8"]\n\n'
        '[[prepare]]\nmodel = "t4"\nprecisions = []\n\n'
        '[[prepare]]\nmodel = "t5"\nprecission = "fp8"\n'
    )
    assert summary(read(path)) == [
        ("accounts/acme/models/t1@FP8", 3),
        ("accounts/acme/models/t1@FP4", 3),
        f"{path}:3: unknown precision 'nope'",
        ("accounts/other/models/t2@BF16", 7),
        f"{path}:11: give either precision or precisions, not both",
        f"{path}:16: precisions is empty",
        f"{path}:20: unknown key 'precission' (expected model, precision or precisions, read_mask)",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[prepare]\n", ":1: invalid TOML"),
        ("colour = 1\n", "unknown top-level key 'colour'"),
        ('account_id = "Bad_Acct"\n', "account_id: invalid account id 'Bad_Acct'"),
        ("prepare = 3\n", "'prepare' must be [[prepare]] tables"),
    ],
)
def test_unusable_toml(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        Manifest.open(str(path))
    assert message in str(info.value)


def test_formats_and_errors_about_them(tmp_path: Path) -> None:
    assert detect_format("a.CSV") == "csv"
    assert detect_format("a.ndjson") == "jsonl"
    assert detect_format("-") == "csv"
    assert detect_format("-", "jsonl") == "jsonl"
    assert detect_format("anything.txt", "toml") == "toml"
    assert detect_format("list.TXT") == "text"
    with pytest.raises(ManifestError, match=r"cannot tell the format.*\.txt"):
        detect_format("a.xml")
    with pytest.raises(ManifestError, match="unknown format 'xml'"):
        detect_format("a.csv", "xml")
    with pytest.raises(ManifestError, match="cannot open: No such file"):
        Manifest.open(str(tmp_path / "missing.csv"))


def test_a_text_manifest_is_one_model_a_line(tmp_path: Path) -> None:
    path = tmp_path / "models.txt"
    path.write_bytes(
        b"\xef\xbb\xbf# fine-tunes to prepare\n"
        b"ft-1\n"
        b"\n"
        b"  accounts/other/models/ft-2   # a full name keeps its account\n"
        b"ft-3,fp8\n"
        b"ft 4\n"
        b"Bad_Id\n"
        b"ft-5\r\n"
    )
    assert summary(read(path)) == [
        ("accounts/dflt/models/ft-1", 2),
        ("accounts/other/models/ft-2", 4),
        f"{path}:5: expected one model a line, got 'ft-3,fp8' (precisions go in a CSV "
        "manifest, or to every line with -p)",
        f"{path}:6: expected one model a line, got 'ft 4' (precisions go in a CSV manifest, "
        "or to every line with -p)",
        f"{path}:7: invalid model id 'Bad_Id': it contains 'B' 'I' '_'; ids are 1-63 "
        "characters of a-z, 0-9 and '-', not starting or ending with '-'",
        ("accounts/dflt/models/ft-5", 8),
    ]


def test_precisions_fill_the_rows_that_name_none(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("model,precision\nm1,\nm2,fp4\nm3\n")
    fp8_bf16 = (Precision.FP8, Precision.BF16)
    with Manifest.open(str(path), None, "a", fp8_bf16) as manifest:
        keys = [e.key for e in manifest.entries() if isinstance(e, PrepareItem)]
        assert manifest.unnamed == 2
    assert keys == [
        "accounts/a/models/m1@FP8",
        "accounts/a/models/m1@BF16",
        "accounts/a/models/m2@FP4",
        "accounts/a/models/m3@FP8",
        "accounts/a/models/m3@BF16",
    ]
    with Manifest.open(str(path), None, "a") as manifest:
        keys = [e.key for e in manifest.entries() if isinstance(e, PrepareItem)]
    assert keys == ["accounts/a/models/m1", "accounts/a/models/m2@FP4", "accounts/a/models/m3"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_resume_passes_over_a_row_only_when_every_precision_it_takes_is_done(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"m{suffix}"
    rows = {
        ".csv": "model\nm1\nm2\n",
        ".jsonl": '{"model": "m1"}\n{"model": "m2"}\n',
        ".txt": "m1\nm2\n",
    }
    path.write_text(rows[suffix])
    done = {"accounts/a/models/m1@FP8", "accounts/a/models/m1@FP4", "accounts/a/models/m2@FP8"}
    with Manifest.open(str(path), None, "a", (Precision.FP8, Precision.FP4)) as manifest:
        manifest.skip = done.__contains__
        keys = [e.key for e in manifest.entries() if isinstance(e, PrepareItem)]
        assert manifest.unnamed == 2  # a row passed over still took the precisions
    # m1 is done at both; m2 at one, so its row is read (the runner skips the done key).
    assert keys == ["accounts/a/models/m2@FP8", "accounts/a/models/m2@FP4"]


def test_the_columns_fwprep_models_prints_beside_model_are_read_and_ignored(
    tmp_path: Path,
) -> None:
    listed = tmp_path / "todo.csv"
    listed.write_text(
        "model,kind,state,supported_precisions\naccounts/a/models/m1,HF_PEFT_ADDON,READY,FP16 FP8\n"
    )
    assert summary(read(listed)) == [("accounts/a/models/m1", 2)]
    as_jsonl = tmp_path / "todo.jsonl"
    as_jsonl.write_text(
        '{"model": "accounts/a/models/m1", "kind": "CUSTOM_MODEL", "state": "UPLOADING", '
        '"supported_precisions": []}\n{"model": "m2", "kinds": "typo"}\n'
    )
    assert summary(read(as_jsonl)) == [
        ("accounts/a/models/m1", 1),
        f"{as_jsonl}:2: unknown key 'kinds' (expected model, precision, read_mask)",
    ]


def test_reading_is_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("model,precision\n")
        for i in range(5000):
            fh.write(f"m{i},fp8\n")
    with Manifest.open(str(path), None, "a") as manifest:
        entries = manifest.entries()
        first = next(entries)
        assert isinstance(first, PrepareItem)
        assert first.line == 2
        # The file is read lazily: after one entry the reader has not reached the end.
        assert manifest._stream.tell() < path.stat().st_size


junk_rows = st.lists(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.sampled_from(["m1,fp8", '"', '"a""b",fp8', "\x00", ",,,,", "model,precision", "é,fp8"]),
        st.text(alphabet='abc,"\r\n#-_', max_size=300),
    ),
    max_size=30,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=junk_rows,
    header=st.sampled_from(["model,precision", "model", "model,precision,read_mask"]),
)
def test_fuzzed_csv_never_raises_and_always_names_the_line(
    tmp_path: Path, rows: list[str], header: str
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes((header + "\n" + "\n".join(rows)).encode("utf-8", "surrogateescape"))
    physical_lines = path.read_bytes().count(b"\n") + 1
    for entry in read(path):
        assert entry.line is not None
        assert 2 <= entry.line <= physical_lines
        if isinstance(entry, InvalidRow):
            assert str(entry).startswith(f"{path}:{entry.line}: ")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=100),
            st.dictionaries(
                st.sampled_from(["model", "precision", "read_mask", "x"]),
                st.none()
                | st.integers()
                | st.text(max_size=30)
                | st.lists(st.integers(), max_size=2),
            ).map(lambda d: json.dumps(d).encode()),
        ),
        max_size=30,
    )
)
def test_fuzzed_jsonl_never_raises(tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
    for entry in read(path):
        if isinstance(entry, InvalidRow):
            assert str(entry).startswith(f"{path}:{entry.line}: ")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300))
def test_fuzzed_toml_is_rows_or_one_manifest_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        entries = read(path)
    except ManifestError as exc:
        assert str(exc).startswith(str(path))
    else:
        for entry in entries:
            if isinstance(entry, InvalidRow):
                assert str(entry).startswith(f"{path}:")
