"""What every command shares (`cli.common`): errors as one clear line, options declared once (every
default shown in --help, a config table per command), result tables whole at 80 columns."""

from __future__ import annotations

from typer.testing import CliRunner

from openbook.cli.main import app
from tests.synthetic_runs import write_runs

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_errors_are_one_clear_line(tmp_path):
    result = invoke("search", tmp_path, "anything")
    assert result.exit_code == 2
    assert "is not an openbook index" in result.output and "Traceback" not in result.output
    bad = tmp_path / "exam.csv"
    bad.write_text("id,prompt,A,B\n1,,a,b\n")
    result = invoke("check", bad)
    assert result.exit_code == 2 and f"{bad}:2: empty prompt" in result.output.replace("\n", "")
    for rows in ("0", "-2"):  # refused before the corpus is read (0 divided by zero, -2 never ended)
        result = invoke("index", bad, "--out", tmp_path / "index", "--dense", "all-minilm-l6-v2", "--shard-rows", rows)
        assert result.exit_code == 2 and "--shard-rows must be" in result.output and not (tmp_path / "index").exists()


# commands whose options are a dataclass next to them (cli.common.options_command); answer/eval: AnswerOptions
def option_commands():
    from openbook.cli import ensemble_cmd, generate_cmd, index_cmd, retrieval_cmd, search_cmd, train_cmd

    return {
        ("index", "build"): (index_cmd.IndexOptions, "index"),
        ("search",): (search_cmd.SearchOptions, "search"),
        ("eval-retrieval",): (retrieval_cmd.RetrievalEvalOptions, "eval-retrieval"),
        ("train", "encoder"): (train_cmd.EncoderOptions, "train-encoder"),
        ("train", "llm"): (train_cmd.LLMOptions, "train-llm"),
        ("train", "cross-encoder"): (train_cmd.CrossEncoderOptions, "train-cross-encoder"),
        ("ensemble", "fit"): (ensemble_cmd.FitOptions, "ensemble-fit"),
        ("ensemble", "combine"): (ensemble_cmd.CombineOptions, "ensemble-combine"),
        ("generate",): (generate_cmd.GenerateOptions, "generate"),
    }


def flat(output: str) -> str:
    """Help text without its boxes and line breaks: wrapped words joined again."""
    return " ".join(output.replace("│", " ").split())


def test_help_shows_every_option_default_and_out_is_always_a_folder():
    from dataclasses import fields

    from openbook.cli.common import shown_default

    for command, (options, _) in option_commands().items():
        text = flat(runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).output)
        for spec in fields(options):
            if spec.metadata["argument"] or spec.metadata["required"]:
                continue
            shown = shown_default(spec)
            assert shown is not False, (command, spec.name)  # every option says what it is when not given
            assert f"default: ({shown})" in text or f"default: {shown}" in text, (command, spec.name, text)
        out = {spec.name: spec for spec in fields(options)}.get("out")
        if out is not None:
            assert "folder (created)" in out.metadata["help"].lower(), command
        assert "--config" in text, command


def test_every_command_with_options_reads_its_own_config_table(tmp_path):
    for command, (_, table) in option_commands().items():
        config = tmp_path / f"{table}.toml"
        config.write_text(f"[{table}]\nno_such_option = 1\n")
        args = [*command, *(["index", "query"] if command == ("search",) else []), "--config", config]
        result = invoke(*args)
        assert result.exit_code == 2, (command, result.output)
        assert f"{table}.toml: unknown key(s) in [{table}]: no_such_option" in flat(result.output), command


def assert_whole_headers(output: str, headers: list[str]) -> None:
    """Every header printed whole at 80 columns: none cut to "questio…"."""
    assert "…" not in output and "..." not in output, output
    for header in headers:
        assert header in output.split(), (header, output)


def test_result_tables_are_whole_at_80_columns(tmp_path, articles_jsonl):
    from rich.console import Console

    from openbook.cli.answer_cmd import metrics_table

    narrow = {"COLUMNS": "80"}
    runs = write_runs(tmp_path / "val", tmp_path / "exam.csv")
    result = runner.invoke(app, ["ensemble", "fit", *map(str, runs), "-o", str(tmp_path / "e")], env=narrow)
    assert result.exit_code == 0, result.output
    assert_whole_headers(result.output, ["method", "MAP@3", "accuracy", "NLL", "ECE", "weighted", "(chosen)"])
    result = runner.invoke(app, ["ensemble", "combine", *map(str, runs), "-o", str(tmp_path / "c")], env=narrow)
    assert result.exit_code == 0, result.output
    assert_whole_headers(result.output, ["run", "MAP@3", "accuracy", "good", "noise"])

    index = tmp_path / "index"
    assert invoke("index", articles_jsonl, "--out", index, "--quiet").exit_code == 0
    exam = tmp_path / "sources.csv"
    exam.write_text("id,prompt,A,B,answer,context\n1,How fast is light?,fast,slow,A,Light is very fast.\n")
    pipelines = ["bm25", "bm25/per-option+edit", "bm25/both+edit"]
    args = [arg for pipeline in pipelines for arg in ("--retrieval", pipeline)]
    result = runner.invoke(app, ["eval-retrieval", str(exam), "-i", str(index), *args], env=narrow)
    assert result.exit_code == 0, result.output
    assert_whole_headers(result.output, ["retrieval", "R@1", "R@5", "R@20", "MRR", "ms/q", *pipelines])

    result = runner.invoke(app, ["models", "list"], env=narrow)
    assert_whole_headers(result.output, ["name", "size", "cached", "licence", "qwen2.5-coder-1.5b-instruct"])

    console = Console(width=80, record=True)
    metrics = {
        "settings": {"exam": "exam.csv"},
        "count": 3,
        "map@3": 0.5,
        "accuracy": 0.33,
        "confidence": {"ece": 0.1},
        "seconds": {"per_question": 1.0, "model": 2.0, "overhead_fraction": 0.1},
    }
    console.print(metrics_table(metrics))
    assert_whole_headers(console.export_text(), ["measure", "value", "MAP@3", "accuracy"])
