from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fwprep import InputError, InvalidPrecisionError, Precision

WIRE_ORDER = [
    "PRECISION_UNSPECIFIED",
    "FP16",
    "FP8",
    "FP8_MM",
    "FP8_AR",
    "FP8_MM_KV_ATTN",
    "FP8_KV",
    "FP8_MM_V2",
    "FP8_V2",
    "FP8_MM_KV_ATTN_V2",
    "NF4",
    "FP4",
    "BF16",
    "FP4_BLOCKSCALED_MM",
    "FP4_MX_MOE",
]


def test_all_fifteen_values_in_wire_order() -> None:
    assert [p.value for p in Precision] == WIRE_ORDER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fp8", Precision.FP8),
        ("FP8", Precision.FP8),
        ("fp8-mm", Precision.FP8_MM),
        (" Fp8_Mm_kv-attn-v2 ", Precision.FP8_MM_KV_ATTN_V2),
        ("bf16", Precision.BF16),
        ("precision-unspecified", Precision.PRECISION_UNSPECIFIED),
        (Precision.NF4, Precision.NF4),
    ],
)
def test_parse_accepts_any_case_and_dashes(text: str, expected: Precision) -> None:
    assert Precision.parse(text) is expected


def test_unknown_precision_is_a_value_error_naming_close_values() -> None:
    with pytest.raises(InvalidPrecisionError) as info:
        Precision.parse("fp8mm")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, InputError)
    assert "FP8_MM" in info.value.suggestions
    assert "FP8_MM" in str(info.value)
    assert "'fp8mm'" in str(info.value)


def test_far_off_value_has_no_suggestion() -> None:
    with pytest.raises(InvalidPrecisionError) as info:
        Precision.parse("banana")
    assert info.value.suggestions == ()
    assert "did you mean" not in str(info.value)


def test_member_equals_its_wire_string() -> None:
    assert Precision.FP8 == "FP8"
    assert "FP8" in (Precision.FP8,)


@st.composite
def spelled(draw: st.DrawFn) -> tuple[Precision, str]:
    member = draw(st.sampled_from(list(Precision)))
    chars = []
    for c in member.value:
        if c == "_":
            chars.append(draw(st.sampled_from(["_", "-"])))
        else:
            chars.append(c.lower() if draw(st.booleans()) else c)
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return member, pad + "".join(chars) + pad


@given(spelled())
def test_parse_round_trips_every_spelling(case: tuple[Precision, str]) -> None:
    member, text = case
    assert Precision.parse(text) is member


@given(st.text())
def test_parse_returns_a_member_or_raises_invalid_precision(text: str) -> None:
    try:
        result = Precision.parse(text)
    except InvalidPrecisionError as exc:
        assert all(s in WIRE_ORDER for s in exc.suggestions)
    else:
        assert result.value == text.strip().upper().replace("-", "_")
