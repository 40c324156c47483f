from __future__ import annotations

import cattrs
import pytest

from fwprep import Model, ModelStatus, Precision
from fwprep._convert import converter, describe_structure_error, structure_model


def test_model_reads_camel_case_and_ignores_unknown_fields() -> None:
    model = structure_model(
        {
            "name": "accounts/a/models/m",
            "displayName": "M",
            "state": "READY",
            "status": {"code": "OK", "message": ""},
            "calibrated": True,
            "supportedPrecisions": ["FP8", "FP4_NEW_IN_2027"],
            "supportedPrecisionsWithCalibration": ["FP4"],
            "contextLength": 8192,
            "baseModelDetails": {"worldSize": 1},
        }
    )
    assert model.display_name == "M"
    assert model.supported_precisions == ("FP8", "FP4_NEW_IN_2027")
    assert model.supported_precisions_with_calibration == ("FP4",)
    assert model.has_precision(Precision.FP8)
    assert Precision.FP8 in model.supported_precisions
    assert not model.has_precision("fp16")
    assert not model.failed


def test_legacy_precisions_field_counts() -> None:
    model = structure_model({"precisions": ["BF16"]})
    assert model.has_precision("bf16")


def test_missing_fields_take_defaults() -> None:
    model = structure_model({})
    assert model == Model()
    assert model.status is None
    assert not model.failed


@pytest.mark.parametrize(
    ("status", "expected", "failed"),
    [
        ({"code": 13, "message": "boom"}, ModelStatus("INTERNAL", "boom"), True),
        ({"code": "FAILED_PRECONDITION"}, ModelStatus("FAILED_PRECONDITION", ""), True),
        ({}, ModelStatus("OK", ""), False),
        ({"code": 0}, ModelStatus("OK", ""), False),
        ({"code": ""}, ModelStatus("OK", ""), False),
    ],
)
def test_status_codes_as_numbers_or_names(
    status: dict[str, object], expected: ModelStatus, failed: bool
) -> None:
    model = structure_model({"status": status})
    assert model.status == expected
    assert model.failed is failed


def test_wrong_types_give_field_paths() -> None:
    with pytest.raises(cattrs.BaseValidationError) as info:
        structure_model({"calibrated": "yes", "supportedPrecisions": [1]})
    text = describe_structure_error(info.value)
    assert "$.calibrated" in text
    assert "$.supported_precisions[0]" in text


def test_non_object_is_refused() -> None:
    with pytest.raises(TypeError, match="expected a JSON object"):
        structure_model(["not", "a", "model"])


def test_unstructure_uses_camel_case() -> None:
    data = converter().unstructure(Model(name="n", supported_precisions=("FP8",)))
    assert data["supportedPrecisions"] == ["FP8"]
    assert "supported_precisions" not in data
