"""Manifests: the files that list what to prepare (CSV, JSON Lines, TOML, plain text).

A manifest is read as a stream: one entry at a time, each a
:class:`~fwprep.PrepareItem` (with its file and line) or an
:class:`InvalidRow` saying what is wrong with that line. A problem with the
file as a whole (it cannot be opened, a CSV header names an unknown column,
the TOML does not parse) is a :class:`ManifestError`, raised by
:meth:`Manifest.open` before any row is read, so nothing is sent.

CSV::

    # comments and blank lines are skipped
    model,precision,read_mask
    accounts/acme/models/ft-7,fp8,
    ft-8,bf16,

(``kind``, ``state`` and ``supported_precisions``, as ``fwprep models``
prints them, are read and ignored.)

JSON Lines (``.jsonl`` or ``.ndjson``), one object a line with the same keys::

    {"model": "accounts/acme/models/ft-7", "precision": "FP8"}

TOML, where ``precisions`` expands into one item per precision::

    account_id = "acme"

    [[prepare]]
    model = "ft-7"
    precisions = ["fp8", "fp4"]

Plain text (``.txt``), one model id or full name a line, ``#`` comments
and blank lines skipped::

    accounts/acme/models/ft-7
    ft-8   # a bare id takes the default account

A row that names no precision leaves the choice to the API, unless the
manifest is opened with ``precisions`` (``fwprep batch -p fp8``): then it
becomes one item per precision given. A row that names one keeps it.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal

import attrs

from fwprep.errors import InputError
from fwprep.models import PrepareItem
from fwprep.names import ModelRef, model_name, validate_id
from fwprep.precision import Precision

__all__ = [
    "FORMATS",
    "InvalidRow",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "ManifestFormat",
    "detect_format",
]

ManifestFormat = Literal["csv", "jsonl", "toml", "text"]
"""The manifest formats fwprep reads."""

FORMATS: tuple[ManifestFormat, ...] = ("csv", "jsonl", "toml", "text")
COLUMNS = ("model", "precision", "read_mask")
INFO_COLUMNS = ("kind", "state", "supported_precisions")
"""Columns (and keys) that ``fwprep models`` prints beside ``model``: read and ignored."""
_EXTENSIONS: dict[str, ManifestFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".toml": "toml",
    ".txt": "text",
}
RowSkip = Callable[[dict[str, Any]], bool]
"""Whether a resumed run passes over a row, judged on the row's raw values."""
_TOML_TABLE_RE = re.compile(r"^\s*\[\[\s*prepare\s*\]\]")
_TOML_LINE_RE = re.compile(r"at line (\d+)")
_MAX_SHOWN = 80
MAX_FIELD = 1024
"""The most characters a manifest value may hold (model, precision, read_mask); longer is invalid.

A full model name is at most 142 characters; the limit only keeps a runaway
value (a whole file on one line) out of messages and the report.
"""
_MAX_KEPT = 256  # characters of an invalid row's raw model or precision kept for the report


def _clip(value: str | None) -> str | None:
    """A raw value as kept in an invalid row's record: cut, with its length said."""
    if value is None or len(value) <= _MAX_KEPT:
        return value
    return f"{value[:_MAX_KEPT]}... ({len(value)} characters)"


class ManifestError(InputError):
    """A manifest that cannot be used at all; its message starts with ``path:line:``."""


@attrs.frozen
class InvalidRow:
    """A manifest row that cannot become an item, and why.

    ``str(row)`` is ``path:line: message``. ``model`` and ``precision`` hold
    the row's raw text, when it had any, for the report.
    """

    source: str
    line: int
    message: str
    model: str | None = attrs.field(default=None, converter=_clip)
    precision: str | None = attrs.field(default=None, converter=_clip)

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


ManifestEntry = PrepareItem | InvalidRow
"""What reading a manifest yields: an item to prepare, or a row that is not valid."""


def detect_format(path: str, explicit: str | None = None) -> ManifestFormat:
    """The format of ``path``: ``explicit`` if given, else from its extension.

    ``-`` (standard input) is CSV unless ``explicit`` says otherwise.

    Raises:
        ManifestError: for an unknown format or extension.
    """
    if explicit is not None:
        lowered = explicit.lower()
        if lowered == "ndjson":
            return "jsonl"
        if lowered not in FORMATS:
            raise ManifestError(f"unknown format {explicit!r}: use csv, jsonl, toml or text")
        return lowered
    if path == "-":
        return "csv"
    found = _EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise ManifestError(
            f"{path}: cannot tell the format from the extension: name it .csv, .jsonl, "
            ".toml or .txt, or pass --format csv|jsonl|toml|text"
        )
    return found


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 4] + "...'"


def make_entry(
    model: object,
    precision: object,
    read_mask: object,
    *,
    source: str,
    line: int,
    default_account: str | None,
) -> ManifestEntry:
    """Validate one row's values and build its item, or say what is wrong."""
    raw_model = model if isinstance(model, str) else None
    raw_precision = precision if isinstance(precision, str) else None

    def invalid(message: str) -> InvalidRow:
        return InvalidRow(source, line, message, raw_model, raw_precision)

    if model is None or (isinstance(model, str) and not model.strip()):
        return invalid("missing model")
    if not isinstance(model, str):
        return invalid(f"model must be a string, got {type(model).__name__} {_show(model)}")
    if precision is not None and not isinstance(precision, str):
        return invalid(
            f"precision must be a string, got {type(precision).__name__} {_show(precision)}"
        )
    if read_mask is not None and not isinstance(read_mask, str):
        return invalid(f"read_mask must be a string, got {type(read_mask).__name__}")
    for name, value in (("model", model), ("precision", precision), ("read_mask", read_mask)):
        if value is not None and len(value) > MAX_FIELD:
            return invalid(
                f"{name} is {len(value)} characters long, more than the {MAX_FIELD} a manifest "
                f"value may hold: {_show(value)}"
            )
    try:
        ref = ModelRef.parse(model, default_account)
        parsed = Precision.parse(precision) if precision and precision.strip() else None
    except InputError as exc:
        return invalid(str(exc))
    return PrepareItem(ref, parsed, read_mask or None, source=source, line=line)


class Manifest:
    """One manifest file (or standard input), opened and checked, ready to stream.

    Use :meth:`open`, then iterate :meth:`entries` once. The manifest's own
    ``account_id`` (TOML) wins over ``default_account`` for its bare ids.
    With ``precisions``, a row that names no precision becomes one item per
    precision given; :attr:`unnamed` counts such rows as they are read, and
    :attr:`named` the valid rows that name one (so a caller can say that
    ``precisions`` changed nothing).
    """

    def __init__(
        self,
        path: str,
        fmt: ManifestFormat,
        stream: IO[bytes],
        default_account: str | None,
        precisions: tuple[Precision, ...] = (),
    ) -> None:
        self.path = path
        self.format: ManifestFormat = fmt
        self.default_account = default_account
        self.precisions = precisions
        self.unnamed = 0
        self.named = 0
        self._stream = stream
        self._csv: _CsvReader | None = None
        self._toml: list[ManifestEntry] | None = None
        self.skip: Callable[[str], bool] | None = None

    @classmethod
    def open(
        cls,
        path: str,
        fmt: str | None = None,
        default_account: str | None = None,
        precisions: tuple[Precision, ...] = (),
    ) -> Manifest:
        """Open ``path`` (``-`` for standard input) and check it as a whole.

        A CSV header is read and checked; a TOML file is parsed. Rows are not
        read yet. ``precisions``: for rows that name none (see :class:`Manifest`).

        Raises:
            ManifestError: the file cannot be opened, or is unusable as a whole.
        """
        kind = detect_format(path, fmt)
        if path == "-":
            if sys.stdin is None:
                raise ManifestError("-: standard input is closed; nothing to read")
            stream: IO[bytes] = sys.stdin.buffer
            label = "<stdin>"
        else:
            label = path
            try:
                stream = open(path, "rb")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise ManifestError(f"{path}: cannot open: {exc.strerror or exc}") from None
        manifest = cls(label, kind, stream, default_account, precisions)
        try:
            if kind == "csv":
                manifest._csv = _CsvReader(label, stream)
            elif kind == "toml":
                manifest._toml = list(_toml_entries(label, stream.read(), default_account))
        except BaseException:
            manifest.close()
            raise
        return manifest

    def close(self) -> None:
        """Close the file (standard input is left open)."""
        if sys.stdin is None or self._stream is not sys.stdin.buffer:
            self._stream.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entries(self) -> Iterator[ManifestEntry]:
        """Yield the manifest's items and invalid rows, in file order.

        Raises:
            ManifestError: when the file cannot be read any further.
        """
        try:
            for entry in self._rows():
                if isinstance(entry, PrepareItem) and entry.precision is None:
                    self.unnamed += 1
                    if self.precisions:
                        for precision in self.precisions:
                            yield attrs.evolve(entry, precision=precision)
                        continue
                elif isinstance(entry, PrepareItem):
                    self.named += 1
                yield entry
        except OSError as exc:
            raise ManifestError(f"{self.path}: read failed: {exc.strerror or exc}") from None

    def _rows(self) -> Iterator[ManifestEntry]:
        account = self.default_account
        skip = None if self.skip is None else self._skipped
        if self._csv is not None:
            return self._csv.entries(account, skip)
        if self._toml is not None:
            return iter(self._toml)
        if self.format == "text":
            return _text_entries(self.path, self._stream, account, skip)
        return _jsonl_entries(self.path, self._stream, account, skip)

    def _skipped(self, values: dict[str, Any]) -> bool:
        assert self.skip is not None
        model, precision = values.get("model"), values.get("precision") or None
        if precision is not None or not self.precisions:
            return _skipped(self.skip, model, precision, self.default_account)
        done = all(
            _skipped(self.skip, model, p.value, self.default_account) for p in self.precisions
        )
        self.unnamed += done
        return done


def _decoded_lines(stream: IO[bytes]) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, decoded cleanly) for each physical line; a BOM is dropped."""
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
            clean = True
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            clean = False
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield number, text, clean


class _CsvReader:
    """CSV with comment lines, exact physical line numbers, and a checked header."""

    def __init__(self, source: str, stream: IO[bytes]) -> None:
        self.source = source
        self._lines = _decoded_lines(stream)
        self._at_record_start = True
        self._record_line = 0
        self._record_clean = True
        self._last_line = 0
        self._reader = csv.reader(self._feed(), strict=True)
        self.columns = self._read_header()

    def _feed(self) -> Iterator[str]:
        for number, text, clean in self._lines:
            self._last_line = number
            if self._at_record_start:
                stripped = text.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                self._at_record_start = False
                self._record_line = number
                self._record_clean = clean
            elif not clean:
                self._record_clean = False
            yield text

    def _next_row(self) -> list[str] | None:
        self._at_record_start = True
        return next(self._reader, None)

    def _read_header(self) -> list[str]:
        try:
            header = self._next_row()
        except csv.Error as exc:
            raise ManifestError(
                f"{self.source}:{self._record_line}: bad CSV header: {exc}"
            ) from None
        if header is None:
            raise ManifestError(
                f"{self.source}: empty manifest: expected a header line (model,...)"
            )
        where = f"{self.source}:{self._record_line}"
        if not self._record_clean:
            raise ManifestError(f"{where}: the header is not valid UTF-8")
        columns = [c.strip().lower() for c in header]
        for column in columns:
            if column not in COLUMNS and column not in INFO_COLUMNS:
                raise ManifestError(
                    f"{where}: unknown column {column!r} in the header "
                    f"(expected {', '.join(COLUMNS)}; 'model' is required)"
                )
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise ManifestError(f"{where}: column {duplicated[0]!r} appears twice in the header")
        if "model" not in columns:
            raise ManifestError(f"{where}: the header has no 'model' column")
        return columns

    def entries(
        self, default_account: str | None, skip: RowSkip | None = None
    ) -> Iterator[ManifestEntry]:
        width = len(self.columns)
        while True:
            try:
                row = self._next_row()
            except csv.Error as exc:
                yield InvalidRow(self.source, self._record_line, f"malformed CSV: {exc}")
                continue
            if row is None:
                return
            line = self._record_line
            if not self._record_clean:
                yield InvalidRow(self.source, line, "the line is not valid UTF-8")
                continue
            if not any(field.strip() for field in row):
                continue
            if len(row) > width:
                yield InvalidRow(
                    self.source,
                    line,
                    f"{len(row)} fields, but the header names {width} columns "
                    f"({', '.join(self.columns)})",
                )
                continue
            values = dict(zip(self.columns, (f.strip() for f in row), strict=False))
            if skip is not None and skip(values):
                continue
            yield make_entry(
                values.get("model"),
                values.get("precision") or None,
                values.get("read_mask") or None,
                source=self.source,
                line=line,
                default_account=default_account,
            )


def _jsonl_entries(
    source: str,
    stream: IO[bytes],
    default_account: str | None,
    skip: RowSkip | None = None,
) -> Iterator[ManifestEntry]:
    for number, text, clean in _decoded_lines(stream):
        if not text.strip():
            continue
        if not clean:
            yield InvalidRow(source, number, "the line is not valid UTF-8")
            continue
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except _DuplicateKeyError as exc:
            yield InvalidRow(source, number, str(exc))
            continue
        except ValueError as exc:
            yield InvalidRow(source, number, f"invalid JSON: {exc}")
            continue
        if not isinstance(data, dict):
            yield InvalidRow(source, number, f"expected a JSON object, got {_json_type(data)}")
            continue
        unknown = [k for k in data if k not in COLUMNS and k not in INFO_COLUMNS]
        if unknown:
            yield InvalidRow(
                source,
                number,
                f"unknown key {_show(unknown[0])} (expected {', '.join(COLUMNS)})",
                data.get("model") if isinstance(data.get("model"), str) else None,
            )
            continue
        if skip is not None and skip(data):
            continue
        yield make_entry(
            data.get("model"),
            data.get("precision"),
            data.get("read_mask"),
            source=source,
            line=number,
            default_account=default_account,
        )


class _DuplicateKeyError(ValueError):
    """A JSON object names a key twice (``json`` would keep the last one silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKeyError(f"key {_show(key)} appears twice in the object")
        data[key] = value
    return data


def _text_entries(
    source: str,
    stream: IO[bytes],
    default_account: str | None,
    skip: RowSkip | None = None,
) -> Iterator[ManifestEntry]:
    for number, text, clean in _decoded_lines(stream):
        model = text.split("#", 1)[0].strip()
        if not model:
            continue
        if not clean:
            yield InvalidRow(source, number, "the line is not valid UTF-8")
            continue
        if "," in model or len(model.split()) > 1:
            yield InvalidRow(
                source,
                number,
                f"expected one model a line, got {_show(model)} (precisions go in a CSV "
                "manifest, or to every line with -p)",
                model,
            )
            continue
        if skip is not None and skip({"model": model}):
            continue
        yield make_entry(
            model, None, None, source=source, line=number, default_account=default_account
        )


def _skipped(
    skip: Callable[[str], bool], model: object, precision: object, default_account: str | None
) -> bool:
    """Whether a resumed run passes over this row: its key, as written, is one it has as done.

    The key is put together from the row's text without validating it (a
    key the report has as done was valid when it was run); a row whose text
    is not in the plain form (``m1`` or ``accounts/a/models/m1``, a precision
    as fwprep spells it) is read the full way.
    """
    if not isinstance(model, str) or not model or not isinstance(precision, str | None):
        return False
    if not model.startswith("accounts/"):
        if default_account is None or "/" in model:
            return False
        model = model_name(default_account, model)
    if precision is not None:
        try:
            precision = Precision.parse(precision).value
        except InputError:
            return False
    return skip(model if precision is None else f"{model}@{precision}")


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "a number"


def _toml_entries(source: str, raw: bytes, default_account: str | None) -> Iterator[ManifestEntry]:
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE_RE.search(str(exc))
        where = f"{source}:{found.group(1)}" if found else source
        raise ManifestError(f"{where}: invalid TOML: {exc}") from None
    unknown = [k for k in data if k not in ("account_id", "prepare")]
    if unknown:
        raise ManifestError(
            f"{source}: unknown top-level key {unknown[0]!r} (expected account_id and "
            "[[prepare]] tables)"
        )
    account = data.get("account_id", default_account)
    if "account_id" in data:
        try:
            validate_id(data["account_id"], "account id")
        except InputError as exc:
            raise ManifestError(f"{source}: account_id: {exc}") from None
    tables = data.get("prepare", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ManifestError(f"{source}: 'prepare' must be [[prepare]] tables")
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if _TOML_TABLE_RE.match(line)]
    if len(lines) != len(tables):
        first = next((n for n, t in enumerate(text.splitlines(), 1) if "prepare" in t), 1)
        lines = [first] * len(tables)
    for table, line in zip(tables, lines, strict=True):
        yield from _toml_table(source, line, table, account)


def _toml_table(
    source: str, line: int, table: dict[str, Any], account: str | None
) -> Iterator[ManifestEntry]:
    model = table.get("model")
    raw_model = model if isinstance(model, str) else None
    unknown = [k for k in table if k not in ("model", "precision", "precisions", "read_mask")]
    if unknown:
        yield InvalidRow(
            source,
            line,
            f"unknown key {unknown[0]!r} (expected model, precision or precisions, read_mask)",
            raw_model,
        )
        return
    if "precision" in table and "precisions" in table:
        yield InvalidRow(source, line, "give either precision or precisions, not both", raw_model)
        return
    if "precisions" in table:
        precisions = table["precisions"]
        if not isinstance(precisions, list):
            yield InvalidRow(source, line, "precisions must be a list of strings", raw_model)
            return
        if not precisions:
            yield InvalidRow(source, line, "precisions is empty", raw_model)
            return
    else:
        precisions = [table.get("precision")]
    for precision in precisions:
        yield make_entry(
            model,
            precision,
            table.get("read_mask"),
            source=source,
            line=line,
            default_account=account,
        )
