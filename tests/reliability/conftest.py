"""The reliability suite's shared pieces: its printed figures, and the contract check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fwprep.emulator import ReceivedRequest

REPO = Path(__file__).resolve().parents[2]
SHARED_SPEC = REPO.parent / "shared" / "spec" / "fireworks-control-plane.openapi.yaml"
PROJECT_SPEC = REPO / "fwprep" / "emulator" / "openapi.yaml"

FIGURES: dict[str, Any] = {}


@pytest.fixture
def figures() -> dict[str, Any]:
    """Figures a test reports; the suite prints them at the end of the run."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name}: {value}")


class Contract:
    """Checks requests against the OpenAPI contract with openapi-core."""

    def __init__(self) -> None:
        from openapi_core import OpenAPI

        spec = SHARED_SPEC if SHARED_SPEC.exists() else PROJECT_SPEC
        self.source = spec
        self.openapi = OpenAPI.from_file_path(str(spec))
        self.checked = 0

    def check(self, requests: list[ReceivedRequest]) -> None:
        """Raise on the first request the contract does not allow."""
        from openapi_core.testing import MockRequest

        for received in requests:
            path, _, query = received.path_qs.partition("?")
            args = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
            headers = {k.lower(): v for k, v in received.headers.items()}
            request = MockRequest(
                "https://api.fireworks.ai",
                received.method.lower(),
                path,
                headers=headers,
                args=args,
                data=received.body or None,
                content_type=headers.get("content-type", "application/json"),
            )
            self.openapi.validate_request(request)
            self.checked += 1


@pytest.fixture(scope="session")
def contract() -> Iterator[Contract]:
    """The contract checker; counts what it checked for the figures."""
    checker = Contract()
    yield checker
    FIGURES["requests checked against the contract"] = (
        f"{checker.checked} ({checker.source.name}), 0 violations"
    )
