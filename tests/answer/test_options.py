"""The options registry is the one list of answer options: the CLI, the config check, run.json's
settings and configs/default.toml are derived from it or checked against it."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openbook.answer import AnswerOptions
from openbook.answer.options import PANELS, answer_settings, option_fields, settings_of
from openbook.cli.main import app
from openbook.config import flag_of, resolve_options
from openbook.errors import ConfigError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "default.toml"


def default_of(spec):
    return spec.default_factory() if spec.default is MISSING else spec.default


@pytest.mark.parametrize("command", ["answer", "eval"])
def test_every_option_is_on_the_command_line_in_its_panel(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for spec in option_fields():
        if spec.name != "exam":
            assert flag_of(spec) in result.output, spec.name
    for panel in PANELS[1:]:
        assert panel in result.output
    assert "--dry-run" in result.output and "[default: (500)]" in result.output


def test_the_command_line_reaches_every_option(tmp_path):
    """Each flag sets its own field: a dry run plans with it."""
    result = CliRunner().invoke(
        app, ["answer", "--rotations", "4", "--triage", "none", "--reader", "yesno", "-r", "letter", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "yesno, letter in 4 option orders" in result.output


def test_a_config_file_takes_the_registry_keys_and_refuses_others(tmp_path):
    config = tmp_path / "openbook.toml"
    config.write_text('[answer]\nrotations = 2\nreaders = ["letter", "yesno"]\n')
    options = resolve_options(AnswerOptions, "answer", config, {"rotations": 3})
    assert options.rotations == 3 and options.readers == ["letter", "yesno"]  # the command line wins
    config.write_text("[answer]\nrotation = 2\n")
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_options(AnswerOptions, "answer", config, {})
    config.write_text('[answer]\nrotations = "two"\n')
    with pytest.raises(ConfigError, match="rotations"):
        resolve_options(AnswerOptions, "answer", config, {})


def test_the_shipped_default_config_spells_out_the_registry_defaults():
    table = tomllib.loads(DEFAULT_CONFIG.read_text())["answer"]
    defaults = {spec.name: default_of(spec) for spec in fields(AnswerOptions)}
    assert set(table) <= set(defaults)
    for key, value in table.items():
        assert value == defaults[key], key
    resolve_options(AnswerOptions, "answer", DEFAULT_CONFIG, {})  # and it loads


def test_run_json_settings_are_the_options_and_resuming_compares_those_that_change_answers(tmp_path):
    settings = settings_of(AnswerOptions(index=tmp_path, out=tmp_path / "run"))
    assert set(settings) == {spec.name for spec in fields(AnswerOptions)} and settings["index"] == str(tmp_path)
    compared = answer_settings(settings)
    assert {"model", "readers", "retrieval", "context_tokens", "triage_rotations", "letter_prior"} <= set(compared)
    assert not {"out", "limit", "resume", "progress", "threads", "budget_seconds"} & set(compared)
