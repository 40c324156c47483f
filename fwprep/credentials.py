"""Where the API key and the account come from, in the order firectl's users expect.

The key, first found wins:

1. the key given (``api_key=``, ``--api-key``) or a file holding it
   (``--api-key-file``, such as a mounted Kubernetes secret; a trailing
   newline is ignored);
2. a profile named (``profile=``, ``--profile``): firectl's
   ``~/.fireworks/profiles/<profile>/auth.ini``, which must exist and hold
   ``api_key``, the place the caller chose;
3. ``FIREWORKS_API_KEY``;
4. ``auth.ini`` as firectl keeps it: ``~/.fireworks/auth.ini``, or the
   profile's when ``FIREWORKS_PROFILE`` names one.

The account, first found wins: the one given (``account_id=``, ``-a``),
``FIREWORKS_ACCOUNT_ID``, the same ``auth.ini``'s ``account_id``.

``auth.ini`` is read, never written: plain
``key = value`` lines, ``#`` and ``;`` comments, a ``[section]`` header
tolerated, keys other than ``api_key`` and ``account_id`` ignored. A file that
other users may read is used, with a warning (as ssh warns of a key file).
Nothing here ever puts the key itself in a message.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

import attrs

from fwprep.errors import ConfigError

__all__ = ["Credentials", "auth_file", "resolve_account", "resolve_credentials"]

logger = logging.getLogger("fwprep")


@attrs.frozen
class Credentials:
    """An API key and an account, with where each came from (a place, never the key).

    Attributes:
        api_key: the key; hidden from the repr.
        key_source: where it was found: ``"the api_key argument"``,
            ``"FIREWORKS_API_KEY"``, or a file's path.
        account_id: the account for bare model ids, if any place gave one.
        account_source: where the account was found (``None`` without one).
    """

    api_key: str = attrs.field(repr=False)
    key_source: str
    account_id: str | None = None
    account_source: str | None = None

    def describe(self) -> str:
        """One line for ``-v``: where the key and the account came from."""
        where = f"API key from {self.key_source}"
        if self.account_id is None:
            return where + "; no account"
        return where + f"; account {self.account_id} from {self.account_source}"


def auth_file(profile: str | None = None, home: Path | None = None) -> Path:
    """The ``auth.ini`` of ``profile`` (``None``: the default one), as firectl lays them out."""
    root = (home or Path.home()) / ".fireworks"
    if profile is None:
        return root / "auth.ini"
    if not profile or "/" in profile or profile in (".", ".."):
        raise ConfigError(f"not a profile name: {profile!r}")
    return root / "profiles" / profile / "auth.ini"


class _AuthIni:
    """One profile's ``auth.ini``, read on first use (a chosen profile's file must exist)."""

    def __init__(self, profile: str | None, environ: Mapping[str, str], home: Path | None) -> None:
        self.chosen = profile is not None
        self.profile = profile if self.chosen else (environ.get("FIREWORKS_PROFILE") or None)
        self.path = auth_file(self.profile, home)
        self._values: dict[str, str] | None = None

    def get(self, name: str) -> str | None:
        if self._values is None:
            self._values = _read_auth_ini(self.path, required=self.profile is not None)
        return self._values.get(name)


def resolve_account(
    account_id: str | None = None,
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> tuple[str | None, str | None]:
    """The account for bare model ids and where it came from, needing no key.

    The one given, else ``FIREWORKS_ACCOUNT_ID``, else the profile's
    ``auth.ini`` (see the module); ``(None, None)`` when no place has one.

    Raises:
        ConfigError: a profile that does not exist, or an unreadable ``auth.ini``.
    """
    env = os.environ if environ is None else environ
    return _account(account_id, env, _AuthIni(profile, env, home))


def _account(
    account_id: str | None, env: Mapping[str, str], ini: _AuthIni
) -> tuple[str | None, str | None]:
    if account_id:
        return account_id, "the account given"
    if env.get("FIREWORKS_ACCOUNT_ID"):
        return env["FIREWORKS_ACCOUNT_ID"], "FIREWORKS_ACCOUNT_ID"
    found = ini.get("account_id")
    return (found, str(ini.path)) if found else (None, None)


def resolve_credentials(
    api_key: str | None = None,
    *,
    api_key_file: str | os.PathLike[str] | None = None,
    account_id: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
    given_as: str = "the api_key argument",
) -> Credentials:
    """Find the API key and the account in the order the module describes.

    Args:
        api_key: a key given explicitly (wins over everything).
        api_key_file: a file holding the key (not with ``api_key``).
        account_id: an account given explicitly.
        profile: a firectl profile chosen explicitly; its file must exist.
        environ: the environment to read (default ``os.environ``).
        home: the home directory (default ``Path.home()``).
        given_as: what to call an explicit ``api_key`` in :attr:`Credentials.key_source`
            (the command line says ``--api-key``).

    Raises:
        ConfigError: no key anywhere (naming every place looked), an
            unreadable key file, a profile that does not exist or has no
            ``api_key``, or a key with a line break inside.
    """
    env = os.environ if environ is None else environ
    if api_key is not None and api_key_file is not None:
        raise ConfigError("give an API key or a file holding one, not both")
    ini = _AuthIni(profile, env, home)
    key, key_source = _explicit_key(api_key, api_key_file, given_as)
    if key is None and ini.chosen:
        key, key_source = ini.get("api_key"), str(ini.path)
        if key is None:
            raise ConfigError(f"{ini.path} has no api_key (firectl set-api-key sets one)")
    if key is None and env.get("FIREWORKS_API_KEY", "").strip():
        key, key_source = env["FIREWORKS_API_KEY"], "FIREWORKS_API_KEY"
    if key is None:
        key, key_source = ini.get("api_key"), str(ini.path)
    if key is None or not key.strip():
        raise ConfigError(_missing_key(ini.path))
    if any(c in key.strip() for c in "\r\n"):
        raise ConfigError(f"the API key from {key_source} contains a line break")
    account, account_source = _account(account_id, env, ini)
    return Credentials(key.strip(), key_source, account, account_source)


def _explicit_key(
    api_key: str | None, api_key_file: str | os.PathLike[str] | None, given_as: str
) -> tuple[str | None, str]:
    if api_key is not None:
        return api_key, given_as
    if api_key_file is None:
        return None, ""
    path = Path(api_key_file)
    text = _read_text(path, "the API key file ")
    if text is None:
        raise ConfigError(f"cannot read the API key file {path}: No such file or directory")
    _warn_if_readable(path)
    key = text.rstrip("\r\n")
    if not key.strip():
        raise ConfigError(f"the API key file {path} is empty")
    return key, str(path)


def _read_auth_ini(path: Path, *, required: bool) -> dict[str, str]:
    """``api_key`` and ``account_id`` of an ``auth.ini``; ``{}`` if absent and optional."""
    text = _read_text(path)
    if text is None:
        if required:
            raise ConfigError(f"no such profile: {path} does not exist")
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        name, _, value = line.partition("=")
        name, value = name.strip().lower(), value.strip().strip("\"'")
        if name in ("api_key", "account_id") and value:
            found[name] = value
    if "api_key" in found:
        _warn_if_readable(path)
    return found


def _read_text(path: Path, what: str = "") -> str | None:
    """A key file's text; None if there is no such file.

    Raises :class:`ConfigError` saying why when the file is there but cannot be
    read (permissions, a directory, a loop of links, not UTF-8).
    """
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read {what}{path}: {reason or exc}") from None


_WARNED: set[Path] = set()
"""Key files already warned of: a command or a service that reads one again is told once."""


def _warn_if_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH) and path not in _WARNED:
        _WARNED.add(path)
        logger.warning("%s holds the API key and other users can read it; chmod 600 %s", path, path)


def _missing_key(ini_path: Path) -> str:
    where = f"{ini_path} ({'no api_key' if ini_path.exists() else 'not found'})"
    return (
        "no Fireworks API key: looked for a key given (--api-key, --api-key-file), "
        f"FIREWORKS_API_KEY and {where}; set FIREWORKS_API_KEY or run firectl set-api-key"
    )
