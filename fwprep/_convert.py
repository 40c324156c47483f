"""The one cattrs converter: fwprep's types to and from the API's JSON.

Field names are snake_case in Python and camelCase on the wire
(``supported_precisions`` <-> ``supportedPrecisions``). The rename hooks are
registered for fwprep's own classes only. Unknown fields are ignored.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import attrs

from fwprep._protocol import GRPC_CODE_NAMES
from fwprep.models import Model, ModelStatus

if TYPE_CHECKING:
    import cattrs

__all__ = ["converter", "describe_structure_error", "structure_model"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _register_camel(converter: cattrs.Converter, cls: type[Any]) -> None:
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    renames: dict[str, Any] = {a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)}
    converter.register_structure_hook(cls, make_dict_structure_fn(cls, converter, **renames))
    converter.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, converter, **renames))


def _structure_status(value: Any, _type: type[ModelStatus]) -> ModelStatus:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    code = value.get("code", "OK")
    if isinstance(code, int) and not isinstance(code, bool):
        code = GRPC_CODE_NAMES[code] if 0 <= code < len(GRPC_CODE_NAMES) else str(code)
    elif not isinstance(code, str):
        raise TypeError(f"status.code: expected a string or an integer, got {code!r}")
    message = value.get("message", "")
    if not isinstance(message, str):
        raise TypeError(f"status.message: expected a string, got {type(message).__name__}")
    return ModelStatus(code=code or "OK", message=message)


def _strict_str(value: Any, _type: type[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_bool(value: Any, _type: type[bool]) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


@functools.cache
def converter() -> cattrs.Converter:
    """The converter, built on first use (cattrs is loaded with the first model read)."""
    import cattrs

    made = cattrs.Converter(omit_if_default=False)
    made.register_structure_hook(str, _strict_str)
    made.register_structure_hook(bool, _strict_bool)
    made.register_structure_hook(ModelStatus, _structure_status)
    _register_camel(made, Model)
    return made


def structure_model(data: Any) -> Model:
    """Build a :class:`Model` from a decoded JSON response.

    Raises:
        cattrs.BaseValidationError: when a known field has the wrong type.
    """
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    return converter().structure(data, Model)


def describe_structure_error(exc: BaseException) -> str:
    """Turn a cattrs error (grouped or not) into one line with field paths."""
    import cattrs

    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc, path="$")
        return "; ".join(notes)
    return str(exc)
