from __future__ import annotations

import json

import pytest
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


def test_index_then_search(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    result = invoke("index", articles_jsonl, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("search", out, "Which organelle produces ATP?", "-k", "1")
    assert result.exit_code == 0
    assert "Mitochondrion" in result.output and "powerhouse of the cell" in result.output
    assert "Photosynthesis" not in result.output


def test_config_file_supplies_flags_and_the_command_line_wins(tmp_path, articles_jsonl):
    out = tmp_path / "idx"
    config = tmp_path / "openbook.toml"
    config.write_text(
        f'[index]\ninputs = ["{articles_jsonl}"]\nout = "{out}"\nchunk_size = 64\n'
        'engine = "tantivy"\nprogress = false\noverwrite = true\n[search]\nk = 2\n'
    )
    assert invoke("index", "--config", config).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["chunking"]["size"] == 64 and manifest["indexes"]["bm25"]["engine"] == "tantivy"
    # `--no-overwrite` on the command line beats `overwrite = true` in the file: an index of the same
    # inputs and settings is kept, one of other settings is not replaced
    result = invoke("index", "--config", config, "--no-overwrite")
    assert result.exit_code == 0 and "kept" in result.output
    result = invoke("index", "--config", config, "--no-overwrite", "--chunk-size", "128")
    assert result.exit_code == 2 and "not empty" in result.output
    result = invoke("search", out, "light", "--config", config)  # matches more than two passages
    assert result.output.count("score ") == 2


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


def test_check_and_score(tmp_path):
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,C,answer\n1,p,a,b,c,A\n2,q,a,b,c,C\n")
    assert "2 questions" in invoke("check", exam).output
    submission = tmp_path / "submission.csv"
    submission.write_text("id,prediction\n1,A B C\n2,A B C\n")
    scores = json.loads(invoke("score", submission, exam).output)
    assert scores == {"map@3": pytest.approx((1 + 1 / 3) / 2), "accuracy": 0.5, "count": 2}
    unanswered = tmp_path / "unanswered.csv"
    unanswered.write_text("id,prompt,A,B\n1,p,a,b\n")
    for args, problem in [
        ((tmp_path / "nope.csv", exam), "nope.csv: submission file not found"),
        ((tmp_path, exam), "submission file not found"),
        ((submission, unanswered), "no question has an answer to score against"),
    ]:
        result = invoke("score", *args)
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
    (tmp_path / "latin1.csv").write_bytes(b"id,prediction\n1,A B \xff\n")
    result = invoke("score", tmp_path / "latin1.csv", exam)
    assert result.exit_code == 2 and "latin1.csv: undecodable bytes" in " ".join(result.output.split())


def test_search_and_eval_retrieval_refuse_bad_options_before_any_work(tmp_path, articles_jsonl):
    index = tmp_path / "index"
    assert invoke("index", articles_jsonl, "--out", index, "--quiet").exit_code == 0
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,answer,context\n1,How fast is light?,fast,slow,A,Light is fast.\n")
    for args, problem in [
        (("search", index, "light", "-k", "0"), "-k must be a number of passages >= 1"),
        (("eval-retrieval", exam, "-i", index, "--limit", "0"), "--limit must be"),
        (("eval-retrieval", exam, "-i", index, "--out", exam), "is a file; --out names the folder"),
        (("eval-retrieval", exam, "-i", index, "--retrieval", "bm25+cross:"), "name the cross-encoder"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
    (index / "passages.arrow").unlink()  # a half-copied index is named, not half-opened
    result = invoke("search", index, "light")
    assert result.exit_code == 2 and "not a whole openbook index (no passages.arrow)" in " ".join(result.output.split())


# commands whose options are a dataclass next to them (cli.common.options_command); answer/eval: AnswerOptions
def option_commands():
    from openbook.cli import ensemble_cmd, index_cmd, retrieval_cmd, search_cmd, train_cmd

    return {
        ("index",): (index_cmd.IndexOptions, "index"),
        ("search",): (search_cmd.SearchOptions, "search"),
        ("eval-retrieval",): (retrieval_cmd.RetrievalEvalOptions, "eval-retrieval"),
        ("train", "encoder"): (train_cmd.EncoderOptions, "train-encoder"),
        ("train", "llm"): (train_cmd.LLMOptions, "train-llm"),
        ("train", "cross-encoder"): (train_cmd.CrossEncoderOptions, "train-cross-encoder"),
        ("ensemble", "fit"): (ensemble_cmd.FitOptions, "ensemble-fit"),
        ("ensemble", "combine"): (ensemble_cmd.CombineOptions, "ensemble-combine"),
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


def write_runs(folder, exam, count: int = 30) -> list:
    """Two finished runs of one exam: `good` points at the answer, `noise` does not."""
    import random

    rng = random.Random(7)
    letters = "ABCD"
    answers = [rng.choice(letters) for _ in range(count)]
    exam.write_text(
        "id,prompt,A,B,C,D,answer\n" + "".join(f"{i},q{i},a{i},b{i},c{i},d{i},{a}\n" for i, a in enumerate(answers))
    )
    runs = []
    for name in ("good", "noise"):
        run = folder / name
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"settings": {"exam": str(exam)}}))
        with (run / "predictions.jsonl").open("w") as handle:
            for i, answer in enumerate(answers):
                weights = {x: rng.random() + (2.0 if name == "good" and x == answer else 0.0) for x in letters}
                total = sum(weights.values())
                probabilities = {x: w / total for x, w in weights.items()}
                record = {"id": str(i), "answer": answer, "probabilities": probabilities}
                handle.write(json.dumps({**record, "readers": {"letter": probabilities}}) + "\n")
        runs.append(run)
    return runs


def test_ensemble_out_is_a_folder_that_combine_and_answer_take(tmp_path):
    from openbook.ensemble import Ensemble

    runs = write_runs(tmp_path / "val", tmp_path / "exam.csv")
    config = tmp_path / "ensemble.toml"
    config.write_text(f'[ensemble-fit]\nout = "{tmp_path / "fitted"}"\nfolds = 1\nfinal = true\n')
    result = invoke("ensemble", "fit", *runs, "--config", config)
    assert result.exit_code == 2 and "--folds must be >= 2; got 1" in result.output  # the file's value
    result = invoke("ensemble", "fit", *runs, "--config", config, "--folds", "3", "--method", "weighted")
    assert result.exit_code == 0, result.output  # the command line wins
    fitted = tmp_path / "fitted"
    assert (fitted / "ensemble.json").is_file()
    assert Ensemble.load(fitted) == Ensemble.load(fitted / "ensemble.json")  # answer --ensemble takes either
    assert Ensemble.load(fitted).readers == ["good", "noise"]  # --final from the file
    result = invoke("ensemble", "combine", *runs, "--ensemble", fitted, "--out", tmp_path / "combined")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "combined" / "submission.csv").is_file()
    result = invoke("ensemble", "fit", *runs)
    assert result.exit_code == 2 and "missing --out (or `out` in the [ensemble-fit] table)" in flat(result.output)
    result = invoke("ensemble", "fit", *runs, "--out", tmp_path / "exam.csv")
    assert result.exit_code == 2 and "is a file; --out names the folder" in flat(result.output)


def test_eval_retrieval_and_search_take_the_retrieval_of_answer(tmp_path, articles_jsonl):
    index = tmp_path / "index"
    assert invoke("index", articles_jsonl, "--out", index, "--quiet").exit_code == 0
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,answer,context\n1,How fast is light?,fast,slow,A,Light is very fast.\n")
    out = tmp_path / "scores"
    result = invoke("eval-retrieval", exam, "-i", index, "--retrieval", "bm25", "--retrieval", "bm25+edit", "-o", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "retrieval.json").read_text())
    assert [row["pipeline"] for row in report["results"]] == ["bm25", "bm25+edit"]
    config = tmp_path / "openbook.toml"
    config.write_text('[eval-retrieval]\nretrieval = ["bm25/per-option"]\n[search]\nretrieval = "bm25+edit"\n')
    result = invoke("eval-retrieval", exam, "-i", index, "--config", config, "-o", out)
    assert result.exit_code == 0 and json.loads((out / "retrieval.json").read_text())["retrieval"] == [
        "bm25/per-option"
    ]
    result = invoke("eval-retrieval", exam, "-i", index, "-o", out)  # auto: bm25 on an index without dense part
    assert (
        result.exit_code == 0 and json.loads((out / "retrieval.json").read_text())["results"][0]["pipeline"] == "bm25"
    )
    for args in ([], ["--config", config], ["--retrieval", "bm25/both+edit"]):
        result = invoke("search", index, "Which organelle produces ATP?", "-k", "1", *args)
        assert result.exit_code == 0 and "Mitochondrion" in result.output, (args, result.output)


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
