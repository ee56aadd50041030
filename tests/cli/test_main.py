"""`openbook`: its version, and help for every command."""

from __future__ import annotations

from typer.testing import CliRunner

from openbook import __version__
from openbook.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_version_and_help_for_every_command():
    assert invoke("--version").output.strip() == f"openbook {__version__}"
    assert invoke("--help").exit_code == 0
    commands = [
        ("index",),
        ("search",),
        ("check",),
        ("score",),
        ("answer",),
        ("eval",),
        ("eval-retrieval",),
        ("models", "list"),
        ("models", "pull"),
        ("models", "verify"),
        ("train", "encoder"),
        ("train", "llm"),
        ("train", "cross-encoder"),
        ("ensemble", "fit"),
        ("ensemble", "combine"),
    ]
    for command in commands:
        result = invoke(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.output, (command, result.output)
