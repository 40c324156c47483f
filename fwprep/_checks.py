"""Checks shared by the client and the batch: counts, durations, items as users write them."""

from __future__ import annotations

import math
from collections.abc import Mapping

from fwprep.errors import ConfigError, InputError
from fwprep.models import PrepareItem
from fwprep.names import ModelRef

__all__ = ["check_count", "check_items", "check_positive", "check_texts", "coerce_item"]


def check_count(name: str, value: object) -> int:
    """``value`` when it is a whole number >= 1; else :class:`~fwprep.ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def check_positive(name: str, value: object, unit: str = "seconds") -> float:
    """``value`` when it is a finite number > 0; else :class:`~fwprep.ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a finite number of {unit} > 0, got {value!r}")
    return float(value)


def check_items(value: object, name: str = "items") -> None:
    """Refuse text or a mapping where an iterable of items is expected.

    A string is iterable, so ``items="accounts/a/models/m"`` would otherwise
    be taken a character at a time.

    Raises:
        InputError: naming the argument and what it got.
    """
    if isinstance(value, str | bytes | Mapping):
        raise InputError(
            f"{name} must be an iterable of items or (model, precision) pairs, "
            f"got a {type(value).__name__}: {_show(value)}"
        )


def check_texts(value: object, name: str, example: str) -> None:
    """Refuse text where a sequence of values (``["fp8", "fp4"]``) is expected.

    Raises:
        InputError: naming the argument, with ``example`` as the shape wanted.
    """
    if isinstance(value, str | bytes):
        raise InputError(
            f"{name} must be a sequence such as {example}, got the text {_show(value)}"
        )


def coerce_item(raw: object, account_id: str | None) -> PrepareItem:
    """An item from a :class:`~fwprep.PrepareItem` or a ``(model, precision)`` pair.

    Raises:
        InputError: naming the item and the shape expected, or what is invalid in it.
    """
    if isinstance(raw, PrepareItem):
        return raw
    if not isinstance(raw, tuple | list) or len(raw) != 2:
        raise InputError(f"item {_show(raw)}: expected a PrepareItem or a (model, precision) pair")
    model, precision = raw
    if not isinstance(model, str | ModelRef):
        raise InputError(f"item {_show(raw)}: the model must be text or a ModelRef")
    if precision is not None and not isinstance(precision, str):
        raise InputError(
            f"item {_show(raw)}: the precision must be text such as 'fp8', a Precision or None"
        )
    return PrepareItem(ModelRef.parse(model, account_id), precision)


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."
