from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fwprep import InvalidModelError, ModelRef
from fwprep.names import validate_id

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-"
valid_ids = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")


def test_full_name_parses() -> None:
    ref = ModelRef.parse("accounts/acme/models/llama-ft-7")
    assert (ref.account_id, ref.model_id) == ("acme", "llama-ft-7")
    assert str(ref) == "accounts/acme/models/llama-ft-7"


def test_bare_id_takes_the_given_account_before_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "from-env")
    assert ModelRef.parse("m", default_account="given").account_id == "given"
    assert ModelRef.parse("m").account_id == "from-env"


def test_bare_id_without_any_account_is_refused() -> None:
    with pytest.raises(InvalidModelError, match="has no account"):
        ModelRef.parse("m")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("accounts/acme/models/", "empty"),
        ("accounts/acme/model/m", "expected accounts/ACCOUNT_ID/models/MODEL_ID"),
        ("accounts/acme/models/m/extra", "expected accounts/ACCOUNT_ID/models/MODEL_ID"),
        ("accounts/Acme/models/m", "invalid account id 'Acme'"),
        ("accounts/acme/models/My_Model", "'M' '_'"),
        ("accounts/acme/models/-m", "not starting or ending"),
        ("accounts/acme/models/m-", "not starting or ending"),
        ("accounts/acme/models/" + "a" * 64, "64 characters long"),
        ("accounts/acme/models/mödel", "'ö'"),
    ],
)
def test_bad_names_are_refused_with_the_reason(text: str, fragment: str) -> None:
    with pytest.raises(InvalidModelError) as info:
        ModelRef.parse(text, default_account="acme")
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_direct_construction_validates() -> None:
    with pytest.raises(InvalidModelError):
        ModelRef("acme", "UPPER")


def test_boundary_lengths() -> None:
    assert validate_id("a" * 63) == "a" * 63
    assert validate_id("a") == "a"
    with pytest.raises(InvalidModelError):
        validate_id("a" * 64)


@given(valid_ids, valid_ids)
def test_valid_ids_round_trip(account: str, model: str) -> None:
    ref = ModelRef.parse(f"accounts/{account}/models/{model}")
    assert ModelRef.parse(str(ref)) == ref
    assert ModelRef.parse(model, default_account=account) == ref


@given(st.text(max_size=80))
def test_any_text_is_a_valid_id_exactly_when_it_follows_the_rules(text: str) -> None:
    follows = (
        1 <= len(text) <= 63
        and all(c in ID_ALPHABET for c in text)
        and not text.startswith("-")
        and not text.endswith("-")
    )
    try:
        validate_id(text)
    except InvalidModelError:
        assert not follows
    else:
        assert follows


@given(st.text(max_size=120))
def test_parse_raises_nothing_but_invalid_model_error(text: str) -> None:
    with contextlib.suppress(InvalidModelError):
        ModelRef.parse(text, default_account="acme")
