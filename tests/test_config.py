from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from openbook.config import resolve_options
from openbook.errors import ConfigError


@dataclass
class Options:
    size: int = 512
    ratio: float = 0.5
    flag: bool = True
    name: str | None = None
    out: Path | None = None
    inputs: list[Path] = field(default_factory=list)


def test_defaults_then_file_then_command_line(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[search]\nsize = 256\nratio = 1\nflag = true\nout = "runs/x"\ninputs = ["a.jsonl"]\n')
    options = resolve_options(Options, "search", config, {"size": None, "flag": False, "name": "given"})
    assert options == Options(
        size=256, ratio=1.0, flag=False, name="given", out=Path("runs/x"), inputs=[Path("a.jsonl")]
    )
    assert resolve_options(Options, "search", None, {}) == Options()
    assert resolve_options(Options, "index", config, {}) == Options()


@pytest.mark.parametrize(
    "body, message",
    [
        ("[search]\nsize = 'big'\n", "size: expected"),
        ("[search]\nflag = 1\n", "flag: expected"),
        ("[search]\nsise = 3\n", "unknown key(s) in [search]: sise"),
        ("[cmd\n", "invalid TOML"),
        ("size = 3\n[search]\n", "key(s) size outside any table"),
        ("[serach]\nsize = 3\n", "unknown table(s) [serach]"),
        ("[search]\ninputs = [1, 2]\n", "inputs[0]: expected"),
    ],
)
def test_bad_files_are_named(tmp_path, body, message):
    config = tmp_path / "bad.toml"
    config.write_text(body)
    with pytest.raises(ConfigError, match="bad.toml") as caught:
        resolve_options(Options, "search", config, {})
    assert message in str(caught.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve_options(Options, "search", tmp_path / "nope.toml", {})


def test_shipped_configs_are_valid():
    from openbook.answer import AnswerOptions, make_plan
    from openbook.cli.index_cmd import IndexOptions
    from openbook.cli.retrieval_cmd import RetrievalEvalOptions
    from openbook.cli.search_cmd import SearchOptions
    from openbook.retrieve import AUTO, RetrievalSpec

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert configs
    for config in configs:
        resolve_options(IndexOptions, "index", config, {})
        resolve_options(SearchOptions, "search", config, {})
        answer = resolve_options(AnswerOptions, "answer", config, {})
        make_plan(answer)  # readers, cascade, budget, bounds: every check of the answer options
        evaluation = resolve_options(RetrievalEvalOptions, "eval-retrieval", config, {})
        for text in [
            *answer.retrieval,
            *evaluation.retrieval,
            resolve_options(SearchOptions, "search", config, {}).retrieval,
        ]:
            assert text == AUTO or RetrievalSpec.parse(text)


def test_the_default_config_spells_out_the_defaults():
    """configs/default.toml documents what runs without it: every value in it is the built-in default."""
    from openbook.answer import AnswerOptions
    from openbook.cli.index_cmd import IndexOptions
    from openbook.cli.retrieval_cmd import RetrievalEvalOptions
    from openbook.cli.search_cmd import SearchOptions

    config = Path(__file__).resolve().parents[1] / "configs" / "default.toml"
    commands = {
        "index": IndexOptions,
        "search": SearchOptions,
        "answer": AnswerOptions,
        "eval-retrieval": RetrievalEvalOptions,
    }
    tables = tomllib.loads(config.read_text())
    assert set(tables) <= set(commands), f"a table this test does not check: {set(tables) - set(commands)}"
    for command in tables:
        options = commands[command]
        assert resolve_options(options, command, config, {}) == resolve_options(options, command, None, {}), command


def test_a_config_turns_the_cascade_off_as_the_command_line_does(tmp_path, bm25_index):
    from openbook.answer import AnswerOptions, make_plan
    from openbook.answer.plan import triage_readers

    config = tmp_path / "single.toml"
    config.write_text(f'[answer]\nindex = "{bm25_index}"\ntriage_readers = ["none"]\n')
    options = resolve_options(AnswerOptions, "answer", config, {})
    assert triage_readers(options) == []
    assert not make_plan(options).is_cascade  # "none" is not taken for a reader's name
    cascading = resolve_options(AnswerOptions, "answer", None, {"index": bm25_index})
    assert triage_readers(cascading) == ["letter"] and make_plan(cascading).is_cascade


@pytest.mark.parametrize(
    "given, problem",
    [
        ({"budget_seconds": 60.0}, "this run has none"),  # the default triage, but no index: no cascade to budget
        ({"budget_per_question": 5.0, "triage_readers": ["none"]}, "needs triage readers"),
        ({"index": "the index", "budget_seconds": 1.0, "budget_per_question": 1.0}, "budget once"),
    ],
)
def test_a_budget_no_cascade_would_spend_is_refused_not_ignored(given, problem, bm25_index):
    from openbook.answer import AnswerOptions, make_plan

    assert make_plan(AnswerOptions(index=bm25_index, budget_seconds=60.0)).is_cascade  # a cascade: fine
    given = {key: bm25_index if value == "the index" else value for key, value in given.items()}
    with pytest.raises(ConfigError, match=problem):
        make_plan(AnswerOptions(**given))


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_and_passages_must_be_positive(limit):
    from openbook.answer import AnswerOptions, make_plan

    make_plan(AnswerOptions(limit=1))
    with pytest.raises(ConfigError, match="--limit must be"):
        make_plan(AnswerOptions(limit=limit))
    with pytest.raises(ConfigError, match="--passages must be"):
        make_plan(AnswerOptions(passages=limit))
