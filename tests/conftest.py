from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import fwprep


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No FIREWORKS_* or proxy variable, and a home of its own: no test reads the user's auth.ini."""
    for name in (
        "FIREWORKS_API_KEY",
        "FIREWORKS_ACCOUNT_ID",
        "FIREWORKS_BASE_URL",
        "FIREWORKS_PROFILE",
        "NO_COLOR",
        *(f"{kind}_proxy" for kind in ("http", "https", "no", "all")),
        *(f"{kind}_PROXY" for kind in ("HTTP", "HTTPS", "NO", "ALL")),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    """Every test runs with backoff waits off; tests of the waits turn them on."""
    fwprep.set_testing(True)
    yield
    fwprep.set_testing(False)


@pytest.fixture
def real_waits() -> None:
    fwprep.set_testing(False)


class _SentWriter:
    """What aiohttp >= 3.14 reads from a request writer once the request is sent."""

    output_size = 0


def _compat_response_class() -> type[Any] | None:
    """aioresponses 0.7.x builds ClientResponse without aiohttp 3.14's ``stream_writer``.

    Until aioresponses supports it (pnuckowski/aioresponses#289), mocked
    responses use a ClientResponse that supplies a finished writer.
    """
    import aiohttp

    if "stream_writer" not in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        return None

    class CompatResponse(aiohttp.ClientResponse):
        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", _SentWriter())
            super().__init__(method, url, **kwargs)

    return CompatResponse


@pytest.fixture
def mocked() -> Iterator[Any]:
    """aioresponses, working with the installed aiohttp."""
    from aioresponses import aioresponses

    response_class = _compat_response_class()

    class Mocked(aioresponses):
        def add(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("response_class") is None and response_class is not None:
                kwargs["response_class"] = response_class
            super().add(*args, **kwargs)

    with Mocked() as m:
        yield m
