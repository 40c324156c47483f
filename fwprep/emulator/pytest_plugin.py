"""A pytest plugin: the ``fireworks_emulator`` fixture, for any project that installs fwprep.

Installed with fwprep (through the ``pytest11`` entry point), so a test suite
gets a fake Fireworks with nothing to configure::

    def test_my_service_prepares_models(fireworks_emulator):
        run_my_service()  # reads FIREWORKS_BASE_URL / FIREWORKS_API_KEY as usual
        assert fireworks_emulator.stats.prepare_successes["accounts/test-account/models/m@FP8"] == 1

The fixture starts an emulator on a free loopback port in a background
thread (so it serves synchronous code, subprocesses and any async framework
alike), points ``FIREWORKS_BASE_URL``, ``FIREWORKS_API_KEY`` and
``FIREWORKS_ACCOUNT_ID`` (``"test-account"``) at it for the test, and stops it
afterwards. To configure it, mark the test::

    @pytest.mark.fireworks_emulator(rpm=600, retry_after=True)
    def test_under_rate_limit(fireworks_emulator): ...

    @pytest.mark.fireworks_emulator(models=50)  # test-account's m0 ... m49, nothing else
    def test_listing(fireworks_emulator): ...

The mark takes the keyword arguments of :class:`fwprep.emulator.Emulator`: the
fields of :class:`~fwprep.emulator.EmulatorConfig`, ``models``, ``api_key``,
``account_id`` (the account exported, and the one ``models=N`` fills), and
``tls_cert``/``tls_key`` to serve ``https://`` (trust its CA in the client
with ``ca_bundle=`` or ``SSL_CERT_FILE``). The emulator's host is added to
``NO_PROXY`` for the test, so that a proxy in the environment does not carry
its requests.
Without ``account_id``, a catalogue file whose models are all of one account
exports that account. A setting the emulator does not take fails the test
with a one-line error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fwprep.emulator import EmulatorThread

__all__ = ["fireworks_emulator"]

TEST_ACCOUNT = "test-account"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fireworks_emulator`` mark."""
    config.addinivalue_line(
        "markers",
        "fireworks_emulator(**settings): settings for the fireworks_emulator fixture "
        "(the fields of fwprep.emulator.EmulatorConfig)",
    )


@pytest.fixture
def fireworks_emulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EmulatorThread]:
    """A running Fireworks emulator, with the FIREWORKS_* variables pointing at it."""
    marker = request.node.get_closest_marker("fireworks_emulator")
    if marker is not None and marker.args:
        raise pytest.UsageError(
            "@pytest.mark.fireworks_emulator takes keyword settings only "
            f"(rpm=600, models=50, ...), got {marker.args!r}"
        )
    settings = dict(marker.kwargs) if marker is not None else {}
    explicit = settings.get("account_id")
    settings.setdefault("account_id", TEST_ACCOUNT)
    try:
        emulator = EmulatorThread(**settings)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"@pytest.mark.fireworks_emulator: {exc}") from None
    with emulator:
        # The emulator is on loopback: a company proxy in the environment must not carry it.
        for name in ("no_proxy", "NO_PROXY"):
            if name == "NO_PROXY" or name in os.environ:
                around = [os.environ.get(name, ""), emulator.emulator.host, "localhost"]
                monkeypatch.setenv(name, ",".join(filter(None, around)))
        monkeypatch.setenv("FIREWORKS_BASE_URL", emulator.base_url)
        monkeypatch.setenv("FIREWORKS_API_KEY", emulator.api_key)
        monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", explicit or _account(emulator, TEST_ACCOUNT))
        yield emulator


def _account(emulator: EmulatorThread, default: str) -> str:
    """The catalogue's one account, if it has exactly one; else ``default``."""
    catalog = emulator.config.catalog
    if not catalog:
        return default
    accounts = {name.split("/")[1] for name in catalog}
    return accounts.pop() if len(accounts) == 1 else default
