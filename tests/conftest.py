from __future__ import annotations

from collections.abc import Iterator

import pytest

import fwprep


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FIREWORKS_API_KEY", "FIREWORKS_ACCOUNT_ID", "FIREWORKS_BASE_URL", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Every test runs with backoff waits off; tests of the waits turn them on."""
    fwprep.set_testing(True)
    yield
    fwprep.set_testing(False)


@pytest.fixture
def real_waits() -> None:
    fwprep.set_testing(False)
