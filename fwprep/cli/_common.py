"""What every ``fwprep`` command shares: argument types, connection options, output, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NoReturn, TextIO, TypeVar

from fwprep.client import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, FireworksClient
from fwprep.credentials import resolve_account, resolve_credentials
from fwprep.errors import InputError
from fwprep.exit_codes import ExitCode
from fwprep.precision import Precision
from fwprep.retry import RetryPolicy
from fwprep.transport import PROXY_FROM_ENVIRONMENT, ProxySetting, proxy_for, show_proxy


def exit_codes(meanings: dict[ExitCode, str], title: str = "exit codes:") -> str:
    """A help section listing what a command's exit codes mean, one :class:`ExitCode` a line."""
    return title + "\n" + "".join(f"  {code:<4d} {text}\n" for code, text in meanings.items())


COMMAND_EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "success",
        ExitCode.FAILED: "something failed: an item, a preparation, a listing",
        ExitCode.USAGE: "usage or configuration error, or unreadable input: nothing was sent",
        ExitCode.HALTED: "halted: the API refused the key (401/403), or --max-failures was reached",
        ExitCode.SIGINT: "interrupted by Ctrl-C (SIGINT)",
        ExitCode.SIGTERM: "interrupted by SIGTERM",
    },
    "exit codes (each command's --help lists its own):",
)

EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "every item succeeded (or was skipped as already done)",
        ExitCode.FAILED: "some item failed or was invalid",
        ExitCode.USAGE: "usage or configuration error, or an unreadable manifest: nothing was sent",
        ExitCode.HALTED: "halted: the API refused the key (401/403) or --max-failures was reached",
        ExitCode.SIGINT: "interrupted by Ctrl-C (SIGINT)",
        ExitCode.SIGTERM: "interrupted by SIGTERM",
    }
)
"""The exit codes of ``fwprep batch``."""

ENVIRONMENT = """environment:
  FIREWORKS_API_KEY     the API key (prefer it to --api-key, which other users can see in ps)
  FIREWORKS_ACCOUNT_ID  the account for bare model ids
  FIREWORKS_PROFILE     the firectl profile whose auth.ini holds the key and account
  FIREWORKS_BASE_URL    the API root (default https://api.fireworks.ai)
  HTTPS_PROXY, HTTP_PROXY, NO_PROXY  the proxy, as curl reads them (--proxy overrides)
  SSL_CERT_FILE, SSL_CERT_DIR        certificate authorities to trust (--ca-bundle overrides)
  NO_COLOR              no colour in progress output

files:
  ~/.fireworks/auth.ini  firectl's api_key and account_id, read when neither option nor
                         environment gives them (profiles/NAME/auth.ini with --profile NAME)
"""

EMULATE_ACCOUNT = "demo"
"""The account for bare model ids under ``--emulate``."""
EMULATE_PREPARE_DELAY = 1.0
"""Seconds a preparation takes under ``--emulate``."""
EMULATE_POLL_INTERVAL = 0.25
"""Seconds between reads of a model under ``--emulate``."""

_N = TypeVar("_N", int, float)

_DURATION_RE = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """Read a duration such as ``90``, ``90s``, ``30m``, ``1h30m`` or ``2.5m`` as seconds.

    Raises:
        ValueError: when the text is not a duration.
    """
    compact = text.strip().lower().replace(" ", "")
    match = _DURATION_RE.fullmatch(compact)
    if not compact or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (examples: 45, 90s, 30m, 1h30m)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def duration(text: str) -> float:
    """An argparse type: a duration (see :func:`parse_duration`)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_duration(text: str) -> float:
    """An argparse type: a duration above zero (``--wait-timeout``, ``--poll-interval``)."""
    seconds = duration(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return seconds


def show_duration(seconds: float) -> str:
    """A default, as ``--help`` shows it: ``30m``, ``5s``, ``0.25s``."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _checked(
    convert: Callable[[str], _N], ok: Callable[[_N], bool], rule: str, kind: str
) -> Callable[[str], _N]:
    """An argparse type: ``convert`` the text, then insist on ``ok``."""

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text}")
        return value

    return parse


positive_int = _checked(int, lambda v: v >= 1, "must be at least 1", "a whole number")
non_negative_int = _checked(int, lambda v: v >= 0, "must be 0 or more", "a whole number")
positive_float = _checked(float, lambda v: 0 < v < float("inf"), "must be more than 0", "a number")
probability = _checked(
    float, lambda v: 0.0 <= v <= 1.0, "must be a probability from 0 to 1", "a number"
)
port = _checked(int, lambda v: 0 <= v <= 65535, "a port is 0 to 65535", "a port number")
at_least_one = _checked(
    float, lambda v: 1 <= v < float("inf"), "must be at least 1 request", "a number"
)


_FILES = {
    "bash": "_shtab_compgen_files",
    "zsh": "_files",
    "fish": "(__fish_complete_path (commandline -ct))",
}


def completes_files(action: argparse.Action) -> argparse.Action:
    """Mark an argument as a file name, for ``fwprep completion``'s scripts (shtab's ``FILE``)."""
    setattr(action, "complete", _FILES)  # noqa: B010 - argparse.Action declares no such field
    return action


def precision(text: str) -> Precision:
    """An argparse type: a precision, with suggestions when it is not one."""
    try:
        return Precision.parse(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class Parser(argparse.ArgumentParser):
    """argparse, with exit code 2 and a one-line hint on errors."""

    def error(self, message: str) -> NoReturn:
        """Print the usage and the error; exit 2."""
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _add_credentials(group: argparse._ArgumentGroup) -> None:
    """``--api-key``, ``--api-key-file`` and ``--profile`` (see :mod:`fwprep.credentials`)."""
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key",
        help="API key (default: $FIREWORKS_API_KEY, then firectl's ~/.fireworks/auth.ini); "
        "other users can see it in ps: prefer --api-key-file or the environment",
    )
    completes_files(
        keys.add_argument(
            "--api-key-file",
            metavar="PATH",
            help="a file holding the API key, such as a mounted secret (trailing newline ignored)",
        )
    )
    group.add_argument(
        "--profile",
        help="firectl profile: read the key and account from "
        "~/.fireworks/profiles/PROFILE/auth.ini (default: $FIREWORKS_PROFILE)",
    )


def _add_network(group: argparse._ArgumentGroup) -> None:
    """``--proxy`` and ``--ca-bundle``: the networks companies run."""
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="HTTP proxy, http://[user:password@]host:port (default: $HTTPS_PROXY/$HTTP_PROXY "
        "unless $NO_PROXY names the host; '' for none)",
    )
    completes_files(
        group.add_argument(
            "--ca-bundle",
            metavar="PATH",
            help="PEM file of certificate authorities to trust instead of the system's "
            "(default: the system's, or $SSL_CERT_FILE)",
        )
    )


def add_connection(parser: argparse.ArgumentParser) -> None:
    """The options every command that talks to the API takes."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "-a",
        "--account-id",
        help="account for bare model ids (default: $FIREWORKS_ACCOUNT_ID, then auth.ini's)",
    )
    _add_credentials(group)
    group.add_argument(
        "--base-url", help="API root (default: $FIREWORKS_BASE_URL or https://api.fireworks.ai)"
    )
    _add_network(group)
    group.add_argument(
        "--emulate",
        action="store_true",
        help="run against a local Fireworks emulator started in this process; nothing is "
        "sent to Fireworks",
    )
    group.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds one request may take (default: {DEFAULT_TIMEOUT:g})",
    )
    retries = RetryPolicy().max_attempts - 1
    group.add_argument(
        "--retries",
        type=non_negative_int,
        default=retries,
        metavar="N",
        help=f"retries after a transient failure, 429s not counted (default: {retries})",
    )
    throttle_timeout = RetryPolicy().throttle_timeout
    group.add_argument(
        "--throttle-timeout",
        type=positive_duration,
        default=throttle_timeout,
        metavar="D",
        help="fail a throttled request only after the server has answered nothing but 429 "
        f"for this long (default: {show_duration(throttle_timeout)})",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say where the key and account came from; log each request to stderr",
    )


def add_poll_interval(parser: argparse.ArgumentParser, what: str) -> None:
    """``--poll-interval``, whose default depends on ``--emulate``."""
    parser.add_argument(
        "--poll-interval",
        type=positive_duration,
        metavar="D",
        help=f"how often {what} (default: {show_duration(DEFAULT_POLL_INTERVAL)}; "
        f"{show_duration(EMULATE_POLL_INTERVAL)} with --emulate)",
    )


def poll_interval(args: argparse.Namespace) -> float:
    """``--poll-interval``, or its default."""
    if args.poll_interval is not None:
        return float(args.poll_interval)
    return EMULATE_POLL_INTERVAL if args.emulate else DEFAULT_POLL_INTERVAL


@contextlib.contextmanager
def logging_to_stderr(verbose: bool) -> Iterator[None]:
    """Send fwprep's log records to stderr for one command, then restore the logger.

    Restoring matters when ``main()`` is called in process (tests, notebooks).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("fwprep: %(levelname)s %(message)s"))
    log = logging.getLogger("fwprep")
    saved = (log.handlers[:], log.level, log.propagate)
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False
    try:
        yield
    finally:
        log.handlers[:], level, log.propagate = saved
        log.setLevel(level)


def say(message: str, stream: TextIO | None = None) -> None:
    """One line on stderr, prefixed ``fwprep:``."""
    print(f"fwprep: {message}", file=stream or sys.stderr, flush=True)


def plural(count: int, word: str) -> str:
    """``1 item``, ``2 items``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def emit(output: str, text: str, data: dict[str, Any]) -> None:
    """Print ``data`` as JSON with ``-o json``, else ``text``."""
    if output == "json":
        print(json.dumps(data, sort_keys=True))
    else:
        print(text)


def account(args: argparse.Namespace) -> str | None:
    """The account for bare ids: -a, $FIREWORKS_ACCOUNT_ID, the profile's auth.ini, the emulator's.

    Under ``--emulate`` no ``auth.ini`` is read: the demo account stands in.
    """
    if args.emulate:
        return args.account_id or os.environ.get("FIREWORKS_ACCOUNT_ID") or EMULATE_ACCOUNT
    found, _ = resolve_account(args.account_id, profile=args.profile)
    return found


def _proxy_setting(given: str | None) -> ProxySetting:
    """``--proxy``: the environment's when not given, none for ``''``, else the URL."""
    if given is None:
        return PROXY_FROM_ENVIRONMENT
    return given or None


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace, **overrides: Any) -> AsyncIterator[FireworksClient]:
    """A client configured from the common connection options (and ``--emulate``)."""
    retry = RetryPolicy(max_attempts=args.retries + 1, throttle_timeout=args.throttle_timeout)
    async with contextlib.AsyncExitStack() as stack:
        api_key, base_url = args.api_key, args.base_url
        if args.emulate:
            from fwprep.emulator import Emulator
            from fwprep.emulator.catalog import demo_catalog

            # A demo account: a few dozen models to list, and any other to prepare.
            demo = demo_catalog(account(args) or EMULATE_ACCOUNT)
            emu = await stack.enter_async_context(
                Emulator(prepare_delay=EMULATE_PREPARE_DELAY, catalog=demo, open_catalog=True)
            )
            say(
                f"--emulate: talking to a local Fireworks emulator at {emu.base_url}; "
                "nothing is sent to Fireworks"
            )
            api_key, base_url = emu.api_key, emu.base_url
            account_id = account(args)
        else:
            credentials = resolve_credentials(
                api_key,
                api_key_file=args.api_key_file,
                account_id=args.account_id,
                profile=args.profile,
                given_as="--api-key",
            )
            if args.verbose:
                say(credentials.describe())
            api_key, account_id = credentials.api_key, credentials.account_id
        proxy: ProxySetting = None if args.emulate else _proxy_setting(args.proxy)
        client = FireworksClient(
            api_key,
            account_id=account_id,
            proxy=proxy,
            ca_bundle=args.ca_bundle,
            base_url=base_url,
            retry=retry,
            timeout=args.timeout,
            **overrides,
        )
        if args.verbose:
            used = proxy_for(client.base_url, proxy)
            say(f"through the proxy {show_proxy(used)}" if used else "no proxy")
        yield await stack.enter_async_context(client)
