"""The numeric precisions a Fireworks model can be prepared for."""

from __future__ import annotations

import difflib
import enum

from fwprep.errors import InvalidPrecisionError

__all__ = ["Precision"]


class Precision(enum.StrEnum):
    """A deployment precision, exactly as the API spells it on the wire.

    Members are listed in the API's wire order. A member *is* its wire string
    (``Precision.FP8 == "FP8"``), so it can be compared with raw values read
    from a response. Only ``PRECISION_UNSPECIFIED`` has a documented meaning
    (a legacy model created before self-serve); fwprep does not invent
    descriptions for the others.

    Use :meth:`parse` for text a person typed::

        >>> Precision.parse("fp8-mm")
        <Precision.FP8_MM: 'FP8_MM'>
    """

    PRECISION_UNSPECIFIED = "PRECISION_UNSPECIFIED"
    FP16 = "FP16"
    FP8 = "FP8"
    FP8_MM = "FP8_MM"
    FP8_AR = "FP8_AR"
    FP8_MM_KV_ATTN = "FP8_MM_KV_ATTN"
    FP8_KV = "FP8_KV"
    FP8_MM_V2 = "FP8_MM_V2"
    FP8_V2 = "FP8_V2"
    FP8_MM_KV_ATTN_V2 = "FP8_MM_KV_ATTN_V2"
    NF4 = "NF4"
    FP4 = "FP4"
    BF16 = "BF16"
    FP4_BLOCKSCALED_MM = "FP4_BLOCKSCALED_MM"
    FP4_MX_MOE = "FP4_MX_MOE"

    @classmethod
    def parse(cls, value: str | Precision) -> Precision:
        """Turn user text into a :class:`Precision`.

        Case does not matter, ``-`` stands for ``_`` and surrounding spaces are
        ignored: ``"fp8-mm"``, ``"FP8_MM"`` and ``" Fp8_mm "`` all give
        :attr:`FP8_MM`.

        Raises:
            InvalidPrecisionError: (a :class:`ValueError`) for anything else;
                its message names the closest valid values.
        """
        if isinstance(value, Precision):
            return value
        if not isinstance(value, str):
            raise InvalidPrecisionError(repr(value))
        known = _SPELLINGS.get(value)
        if known is not None:
            return known  # a spelling seen before (a manifest repeats a few, a million times)
        normal = value.strip().upper().replace("-", "_")
        try:
            found = cls(normal)
        except ValueError:
            pass
        else:
            if len(_SPELLINGS) < _MAX_SPELLINGS:
                _SPELLINGS[value] = found
            return found
        names = [m.value for m in cls]
        close = difflib.get_close_matches(normal, names, n=3, cutoff=0.6)
        if not close:
            squeezed = normal.replace("_", "")
            close = [n for n in names if n.replace("_", "") == squeezed]
        raise InvalidPrecisionError(value, tuple(close)) from None


_SPELLINGS: dict[str, Precision] = {}
_MAX_SPELLINGS = 1024
