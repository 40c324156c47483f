"""Where the key and the account come from: arguments, a key file, the environment, auth.ini."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support import run_cli

from fwprep import ConfigError, FireworksClient, Request, Response
from fwprep.credentials import auth_file, resolve_account, resolve_credentials
from fwprep.emulator import EmulatorThread

KEY = "fw-secret-key-123"


def write_ini(home: Path, text: str, profile: str | None = None, mode: int = 0o600) -> Path:
    path = auth_file(profile, home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def home() -> Path:
    return Path.home()  # the test's own (conftest points HOME at a fresh directory)


def test_the_default_auth_ini_gives_key_and_account(home: Path) -> None:
    path = write_ini(home, f"api_key = {KEY}\naccount_id = acme\nid_token = t\n")
    found = resolve_credentials(environ={})
    assert (found.api_key, found.account_id) == (KEY, "acme")
    assert found.key_source == found.account_source == str(path)


def test_order_given_then_environment_then_auth_ini(home: Path) -> None:
    write_ini(home, "api_key = from-ini\naccount_id = ini-account\n")
    env = {"FIREWORKS_API_KEY": "from-env", "FIREWORKS_ACCOUNT_ID": "env-account"}
    assert resolve_credentials(environ=env).api_key == "from-env"
    assert resolve_credentials(environ=env).account_id == "env-account"
    given = resolve_credentials("given", account_id="given-account", environ=env)
    assert (given.api_key, given.account_id) == ("given", "given-account")
    assert resolve_credentials(environ={}).api_key == "from-ini"


def test_a_key_file_drops_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text(KEY + "\n")
    secret.chmod(0o600)
    found = resolve_credentials(api_key_file=secret, environ={"FIREWORKS_API_KEY": "other"})
    assert found.api_key == KEY
    assert found.key_source == str(secret)


def test_a_named_profile_comes_before_the_environment(home: Path) -> None:
    path = write_ini(home, "api_key = staging-key\naccount_id = staging\n", profile="staging")
    env = {"FIREWORKS_API_KEY": "env-key"}
    found = resolve_credentials(profile="staging", environ=env)
    assert (found.api_key, found.account_id, found.key_source) == (
        "staging-key",
        "staging",
        str(path),
    )
    assert path == home / ".fireworks" / "profiles" / "staging" / "auth.ini"


def test_fireworks_profile_picks_the_file_after_the_environment_key(home: Path) -> None:
    write_ini(home, "api_key = default-key\n")
    write_ini(home, "api_key = dev-key\naccount_id = dev\n", profile="dev")
    assert resolve_credentials(environ={"FIREWORKS_PROFILE": "dev"}).api_key == "dev-key"
    both = {"FIREWORKS_PROFILE": "dev", "FIREWORKS_API_KEY": "env-key"}
    found = resolve_credentials(environ=both)
    assert (found.api_key, found.account_id) == ("env-key", "dev")


def test_section_headers_comments_and_quotes_are_tolerated(home: Path) -> None:
    write_ini(home, "[default]\n# a comment\n; another\napi_key = 'quoted'\nACCOUNT_ID=\"acme\"\n")
    found = resolve_credentials(environ={})
    assert (found.api_key, found.account_id) == ("quoted", "acme")


def test_the_account_needs_no_key(home: Path) -> None:
    path = write_ini(home, "account_id = acme\n")
    assert resolve_account(environ={}) == ("acme", str(path))
    assert resolve_account("given", environ={}) == ("given", "the account given")
    assert resolve_account(environ={"FIREWORKS_ACCOUNT_ID": "e"}) == ("e", "FIREWORKS_ACCOUNT_ID")


def test_a_missing_key_names_every_place_looked(home: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_credentials(environ={})
    message = str(info.value)
    assert "--api-key" in message
    assert "FIREWORKS_API_KEY" in message
    assert f"{home}/.fireworks/auth.ini (not found)" in message
    write_ini(home, "account_id = acme\nid_token = abc\n")
    with pytest.raises(ConfigError, match=r"auth\.ini \(no api_key\)"):
        resolve_credentials(environ={})


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        (None, {"profile": "nope"}, "no such profile: .*profiles/nope/auth.ini does not exist"),
        (None, {"environ": {"FIREWORKS_PROFILE": "nope"}}, "no such profile"),
        ("account_id = a\n", {"profile": "p"}, "profiles/p/auth.ini has no api_key"),
        (None, {"api_key_file": "/no/such/key"}, "cannot read the API key file /no/such/key"),
        (None, {"api_key": "k", "api_key_file": "/k"}, "not both"),
        (None, {"profile": "../etc"}, "not a profile name"),
        (None, {"api_key": "a\nb"}, "contains a line break"),
    ],
)
def test_bad_credentials_raise_config_errors(
    home: Path, setup: str | None, kwargs: dict[str, object], message: str
) -> None:
    if setup is not None:
        write_ini(home, setup, profile="p")
    kwargs.setdefault("environ", {})
    with pytest.raises(ConfigError, match=message):
        resolve_credentials(**kwargs)  # type: ignore[arg-type]


def test_key_files_that_are_not_text_say_so(home: Path, tmp_path: Path) -> None:
    """A key file or an auth.ini in another encoding: a one-line ConfigError naming the file."""
    ini = write_ini(home, "")
    ini.write_bytes(b"api_key = \xff\xfe\n")
    with pytest.raises(ConfigError, match=f"cannot read {ini}: not UTF-8 text"):
        resolve_credentials(environ={})
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=f"cannot read the API key file {key_file}: not UTF-8"):
        resolve_credentials(api_key_file=key_file, environ={})


def test_an_auth_ini_that_is_there_but_unreadable_is_not_taken_for_absent(home: Path) -> None:
    """A loop of links (or a folder it may not enter) says why; only a missing file is absent."""
    ini = auth_file(None, home)
    ini.parent.mkdir(parents=True)
    ini.symlink_to(ini)
    with pytest.raises(ConfigError, match=f"cannot read {ini}: Too many levels of symbolic links"):
        resolve_credentials(environ={})
    profile = auth_file("p", home)
    profile.parent.mkdir(parents=True)
    profile.symlink_to(profile)
    with pytest.raises(ConfigError, match=f"cannot read {profile}: Too many levels"):
        resolve_credentials(profile="p", environ={"FIREWORKS_API_KEY": KEY})


def test_an_empty_key_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "key"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_credentials(api_key_file=empty, environ={})


def test_a_file_others_can_read_is_used_with_a_warning(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_ini(home, f"api_key = {KEY}\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="fwprep"):
        assert resolve_credentials(environ={}).api_key == KEY
    assert f"chmod 600 {path}" in caplog.text
    assert KEY not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="fwprep"):
        resolve_credentials(environ={})
    assert caplog.text == ""


def test_a_command_warns_of_a_readable_auth_ini_once(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmulatorThread() as emu:
        write_ini(home, f"api_key = {emu.api_key}\naccount_id = acme\n", mode=0o644)
        code, _, err = run_cli(capsys, "models", "--base-url", emu.base_url)
    assert code == 0, err
    assert err.count("other users can read it") == 1


def test_the_key_never_shows(home: Path) -> None:
    write_ini(home, f"api_key = {KEY}\naccount_id = acme\n")
    found = resolve_credentials(environ={})
    assert KEY not in repr(found)
    assert KEY not in found.describe()
    assert found.describe() == (
        f"API key from {home}/.fireworks/auth.ini; account acme from {home}/.fireworks/auth.ini"
    )


async def test_the_client_sends_the_auth_ini_key(home: Path) -> None:
    write_ini(home, f"api_key = {KEY}\naccount_id = acme\n", profile="work")
    seen: list[Request] = []

    async def send(request: Request) -> Response:
        seen.append(request)
        return Response(200, {}, b"{}")

    async with FireworksClient(profile="work", transport=send) as client:
        await client.prepare_model("m", "fp8")  # a bare id: the profile's account
    assert seen[0].headers["Authorization"] == f"Bearer {KEY}"
    assert seen[0].url.endswith("/v1/accounts/acme/models/m:prepare")
    assert "profiles/work/auth.ini" in client.credentials_source
    assert KEY not in client.credentials_source


def test_verbose_says_where_the_key_came_from(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with EmulatorThread() as emu:
        path = write_ini(home, f"api_key = {emu.api_key}\naccount_id = acme\n")
        code, out, err = run_cli(capsys, "models", "--base-url", emu.base_url, "-v")
    assert code == 0, err
    assert f"fwprep: API key from {path}; account acme from {path}" in err
    assert emu.api_key not in err + out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--profile", "nope"], "no such profile"),
        (["--api-key-file", "/no/such/file"], "cannot read the API key file /no/such/file"),
        ([], "firectl set-api-key"),
    ],
)
def test_credential_errors_exit_2_before_sending(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run_cli(
        capsys, "models", "-a", "acme", "--base-url", "http://127.0.0.1:9", *argv
    )
    assert code == 2
    assert message in err
    assert "Traceback" not in err
