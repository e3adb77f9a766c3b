"""The README's two opening commands: CI runs the test one exactly, and both use a virtual environment
(stock Debian 12 and Ubuntu 24.04 refuse a system-wide pip install, PEP 668)."""
import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
CI_RUN = (ROOT / ".ci" / "run").read_text()


def command_after(heading: str) -> str:
    """The one-line shell block that follows the paragraph starting with `heading`."""
    match = re.search(rf"^{re.escape(heading)}.*?^```sh\n(.+?)\n```", README, re.S | re.M)
    assert match, f"no sh block after {heading!r} in the README"
    (line,) = match.group(1).splitlines()
    return line


def test_ci_runs_the_readmes_test_command_exactly():
    test_command = command_after("Test it")
    assert test_command in CI_RUN.splitlines(), "the README's test command and .ci/run differ"
    assert test_command.endswith("pytest -q") and "[torch,gpu,test]" in test_command


def test_both_commands_install_into_a_virtual_environment():
    for heading in ("Run it", "Test it"):
        command = command_after(heading)
        assert "python3-venv" in command and "python3 -m venv .venv" in command, command
        assert " pip " not in f" {command} " and "python3 -m pip" not in command, command  # never system pip
        assert ".venv/bin/pip install -e" in command, command
    assert command_after("Run it").endswith(".venv/bin/neurontui")
