"""What the emulator reads from requests and writes into answers, apart from the routing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fwprep.precision import Precision

__all__ = ["Reject", "html_page", "model_json", "parse_prepare_body"]

_PRECISIONS = frozenset(p.value for p in Precision)


class Reject(Exception):
    """A request the emulator answers with an error: a google.rpc code name and a message."""

    def __init__(self, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def parse_prepare_body(raw: bytes) -> str | None:
    """Validate a prepare body against the contract; return the precision, if any."""
    if not raw.strip():
        raise Reject("INVALID_ARGUMENT", "the request body is required (a JSON object)")
    try:
        body = json.loads(raw)
    except ValueError:
        raise Reject("INVALID_ARGUMENT", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Reject("INVALID_ARGUMENT", "the request body must be a JSON object")
    for field in body:
        if field not in ("precision", "readMask"):
            raise Reject("INVALID_ARGUMENT", f"unknown field {field!r} in the request body")
    mask = body.get("readMask")
    if "readMask" in body and not isinstance(mask, str):
        raise Reject("INVALID_ARGUMENT", "field 'readMask' must be a string")
    if "precision" not in body:
        return None
    precision = body["precision"]
    if not isinstance(precision, str) or precision not in _PRECISIONS:
        raise Reject(
            "INVALID_ARGUMENT",
            f"field 'precision': invalid value {precision!r}; expected one of "
            + ", ".join(p.value for p in Precision),
        )
    return precision


def model_json(
    name: str,
    supported: Sequence[str],
    calibrated: bool,
    status: tuple[str, str],
    *,
    kind: str = "HF_BASE_MODEL",
    state: str = "READY",
) -> dict[str, Any]:
    """A Model resource as the API sends it, with the fields the emulator keeps."""
    return {
        "name": name,
        "displayName": name.rsplit("/", 1)[-1],
        "description": "",
        "createTime": "2026-01-01T00:00:00Z",
        "updateTime": "2026-01-01T00:00:00Z",
        "state": state,
        "status": {"code": status[0], "message": status[1]},
        "kind": kind,
        "public": False,
        "contextLength": 8192,
        "calibrated": calibrated,
        "supportedPrecisions": list(supported),
        "supportedPrecisionsWithCalibration": [],
        "baseModelDetails": {"worldSize": 1, "parameterCount": "7000000000"},
        "deprecationDate": None,
    }


def html_page(status: int, reason: str) -> bytes:
    """The error page a proxy such as nginx sends."""
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()
