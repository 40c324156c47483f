"""``fwprep completion``: a script for each shell, naming every command and their options."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support import run_cli

from fwprep.cli import build_parser
from fwprep.cli._reference import commands


def command_names() -> list[str]:
    return sorted(commands(build_parser()))


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_shell_gets_a_script_naming_every_command(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "completion", shell)
    assert code == 0, err
    assert set(command_names()) >= {
        "prepare",
        "batch",
        "models",
        "report",
        "emulator",
        "completion",
    }
    for command in command_names():
        assert command in out
    for option in ("dry-run", "api-key-file", "profile", "status", "max-rpm"):
        assert (f"-l {option}" if shell == "fish" else f"--{option}") in out


def test_the_bash_script_is_valid_bash(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash here")
    _, out, _ = run_cli(capsys, "completion", "bash")
    script = tmp_path / "fwprep.bash"
    script.write_text(out)
    checked = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_an_unknown_shell_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "completion", "tcsh")
    assert code == 2
    assert "invalid choice: 'tcsh'" in err
