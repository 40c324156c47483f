"""``fwprep emulator``: serve a local emulator of the Fireworks control plane until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fwprep.cli._common import (
    at_least_one,
    completes_files,
    duration,
    port,
    positive_float,
    probability,
    say,
    show_duration,
)
from fwprep.errors import ConfigError
from fwprep.exit_codes import ExitCode

if TYPE_CHECKING:
    from fwprep.emulator import CatalogEntry, Emulator, EmulatorConfig
    from fwprep.emulator.budget import RetryAfter

DEFAULT_PORT = 8765
"""The port ``fwprep emulator`` listens on unless told otherwise."""
SERVED_PREPARE_DELAY = 2.0
"""Seconds a preparation takes on a served emulator: long enough to see a wait happen."""


def _uniform(
    text: str, single: Callable[[str], float], what: str, examples: str
) -> tuple[float, float | None]:
    """One value (read by ``single``), or ``LOW-HIGH``: numbers drawn uniformly between."""
    low, sep, high = text.partition("-")
    try:
        values = (float(low), float(high)) if sep else (single(text), None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text!r} (examples: {examples})") from None
    if values[0] < 0 or (values[1] is not None and not values[0] <= values[1] < float("inf")):
        raise argparse.ArgumentTypeError(f"not a {what} range: {text!r} (need 0 <= LOW <= HIGH)")
    return values


def _retry_after(text: str) -> RetryAfter:
    from fwprep.emulator.budget import RetryAfter

    try:
        return RetryAfter.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _delay(text: str) -> tuple[float, float | None]:
    return _uniform(text, duration, "preparation time", "30s, 2m, or 5-30 for uniform seconds")


def _latency(text: str) -> tuple[float, float | None]:
    return _uniform(text, float, "latency", "20, or 10-50 for uniform")


def add_parser(commands: Any) -> None:
    """Add ``emulator`` to the subcommands."""
    from fwprep.emulator.defaults import DEFAULT_API_KEY

    parser = commands.add_parser(
        "emulator",
        help="serve a local Fireworks emulator",
        description="Serve a local emulator of the Fireworks control plane until Ctrl-C.",
        epilog="examples:\n"
        f"  fwprep emulator --port {DEFAULT_PORT}\n"
        "  fwprep emulator --rpm 600 --retry-after --fault-rate 0.05 --seed 1\n"
        "  fwprep emulator --rpm 1200 --limit-shape window --retry-after exact\n\n"
        "Then point fwprep (or any client) at it:\n"
        f"  export FIREWORKS_BASE_URL=http://127.0.0.1:{DEFAULT_PORT} "
        f"FIREWORKS_API_KEY={DEFAULT_API_KEY}\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_account_options(parser)
    _add_fault_options(parser)
    parser.set_defaults(handler=run)


def _add_account_options(parser: argparse.ArgumentParser) -> None:
    """Where it listens, and the account it plays: key, limit, models, preparations."""
    from fwprep.emulator.defaults import DEFAULT_API_KEY

    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument(
        "--port",
        type=port,
        default=DEFAULT_PORT,
        help=f"port, 0 to 65535 (0: any free port; default: {DEFAULT_PORT})",
    )
    parser.add_argument("--api-key", help=f"the accepted key (default: {DEFAULT_API_KEY})")
    for name, what in (("cert", "certificate"), ("key", "certificate's private key")):
        completes_files(
            parser.add_argument(
                f"--tls-{name}",
                metavar="PEM",
                help=f"serve https:// with this {what} (give --tls-cert and --tls-key together)",
            )
        )
    _add_budget_options(parser)
    parser.add_argument(
        "--prepare-delay",
        type=_delay,
        default=(SERVED_PREPARE_DELAY, None),
        metavar="D",
        help="time until a prepared precision shows on the model: 30s, or 5-30 (seconds, "
        f"uniform) (default: {show_duration(SERVED_PREPARE_DELAY)})",
    )
    parser.add_argument(
        "--models",
        metavar="N|PATH|demo",
        help="serve a catalogue: N models m0..m(N-1) of --account-id, or the Model objects "
        "of a JSON Lines file; other models are 404. 'demo': the 36 mixed models of "
        "--emulate's demo account, other models existing too (default: every model exists)",
    )
    parser.add_argument(
        "-a",
        "--account-id",
        default="demo",
        help="the account of the N numbered models (default: demo)",
    )
    parser.add_argument(
        "--failure-rate",
        type=probability,
        default=0.0,
        metavar="P",
        help="chance that a preparation fails (the model's status says so)",
    )


def _add_budget_options(parser: argparse.ArgumentParser) -> None:
    """The account's request budget: its limit, its shape, and what its 429s say."""
    from fwprep.emulator.budget import SHAPES

    parser.add_argument("--rpm", type=positive_float, help="account-wide requests/minute limit")
    parser.add_argument(
        "--burst",
        type=at_least_one,
        metavar="N",
        help="rate-limit bucket depth in requests, at least 1 (default: a second's worth)",
    )
    parser.add_argument(
        "--limit-shape",
        choices=SHAPES,
        default="bucket",
        help="the budget's shape: a token bucket --burst deep (default), a fixed calendar "
        "minute, or any trailing 60 s",
    )
    parser.add_argument(
        "--retry-after",
        nargs="?",
        const="seconds",
        default="none",
        type=_retry_after,
        metavar="MODE",
        help="what 429s say: none (default), seconds (the wait rounded up; the flag alone), "
        "exact, ms (retry-after-ms) or fixed:N",
    )
    parser.add_argument(
        "--count-refused", action="store_true", help="refused requests spend the budget too"
    )


def _add_fault_options(parser: argparse.ArgumentParser) -> None:
    """What goes wrong: latency, transient faults, stalls, error bodies."""
    parser.add_argument(
        "--latency-ms", type=_latency, metavar="MS", help="added latency: 20, or 10-50 (uniform)"
    )
    parser.add_argument(
        "--fault-rate",
        type=probability,
        default=0.0,
        metavar="P",
        help="chance of a transient fault, spread evenly over 500, 503, 429 and a reset",
    )
    parser.add_argument(
        "--stall-rate",
        type=probability,
        default=0.0,
        metavar="P",
        help="chance that a request is held --stall-seconds before its answer, to outlast "
        "a client's timeout (with --fault-rate, at most 1 in all)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="how long a stalled request is held (default: 300)",
    )
    parser.add_argument(
        "--error-format",
        choices=("google", "nested", "flat", "html", "empty"),
        default="google",
        help="shape of error bodies (default: google.rpc.Status JSON)",
    )
    parser.add_argument("--seed", type=int, help="make faults and latency reproducible")


async def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT (Ctrl-C) or SIGTERM; then stop cleanly and exit 0."""
    from fwprep.emulator import Emulator

    try:
        config = _config(args)
    except ValueError as exc:  # settings that do not fit together, such as fault rates past 1
        raise ConfigError(str(exc)) from None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("give --tls-cert and --tls-key together")
    emulator = Emulator(
        config, host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key
    )
    await _serve(emulator, args.account_id if config.catalog is not None else None)
    say("emulator stopped")
    return ExitCode.OK


def _config(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator's settings from the command line.

    Raises:
        ValueError: for settings the emulator refuses (fault rates past 1, say).
    """
    from fwprep.emulator import EmulatorConfig, Faults
    from fwprep.emulator.defaults import DEFAULT_API_KEY

    latency, latency_max = args.latency_ms or (0.0, None)
    share = args.fault_rate / 4
    faults = Faults(
        error_500=share,
        error_503=share,
        throttle_429=share,
        reset=share,
        stall=args.stall_rate,
        stall_seconds=args.stall_seconds,
        latency_ms=latency,
        latency_max_ms=latency_max,
    )
    catalog = _catalog(args.models, args.account_id) if args.models else None
    return EmulatorConfig(
        catalog=catalog,
        open_catalog=args.models == "demo",
        api_keys=(str(args.api_key or DEFAULT_API_KEY),),
        prepare_delay=args.prepare_delay[0],
        prepare_delay_max=args.prepare_delay[1],
        failure_rate=args.failure_rate,
        rpm=args.rpm,
        burst=args.burst,
        retry_after=args.retry_after,
        limit_shape=args.limit_shape,
        count_refused=args.count_refused,
        error_format=args.error_format,
        faults=faults,
        seed=args.seed,
    )


async def _serve(emulator: Emulator, account: str | None) -> None:
    """Serve until SIGINT or SIGTERM."""
    try:
        await emulator.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {emulator.host}:{emulator.port}: {exc.strerror or exc}"
        ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    # Installed here, not inherited: a shell starting the emulator in the background
    # leaves SIGINT ignored, and a container stops it with SIGTERM.
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        print(f"fwprep emulator serving on {emulator.base_url} (Ctrl-C stops it)", flush=True)
        print(export_line(emulator.base_url, emulator.api_key, account), flush=True)
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await emulator.stop()


def export_line(base_url: str, api_key: str, account: str | None) -> str:
    """The shell line that points a client at the emulator, every value quoted for the shell."""
    pairs = [("FIREWORKS_BASE_URL", base_url), ("FIREWORKS_API_KEY", api_key)]
    if account is not None:
        pairs.append(("FIREWORKS_ACCOUNT_ID", account))
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in pairs)


def _catalog(spec: str, account_id: str) -> Mapping[str, CatalogEntry]:
    """``--models``: a count of numbered models, ``demo``, or a JSON Lines file of Model objects."""
    from fwprep.emulator.catalog import CatalogError, demo_catalog, numbered_catalog, read_catalog
    from fwprep.names import validate_id

    try:
        validate_id(account_id, "account id")
        if spec == "demo":
            return demo_catalog(account_id)
        if spec.isdigit():
            return numbered_catalog(int(spec), account_id=account_id)
        return read_catalog(spec)
    except (CatalogError, ValueError) as exc:
        raise ConfigError(f"--models {spec}: {exc}") from None
