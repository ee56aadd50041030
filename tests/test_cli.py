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
        ("train", "encoder"),
        ("train", "llm"),
        ("train", "cross-encoder"),
        ("ensemble", "fit"),
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
        (("eval-retrieval", exam, "-i", index, "--out", tmp_path), "is a folder"),
        (("eval-retrieval", exam, "-i", index, "-p", "bm25+cross:"), "name the cross-encoder"),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2 and problem in " ".join(result.output.split()), result.output
    (index / "passages.arrow").unlink()  # a half-copied index is named, not half-opened
    result = invoke("search", index, "light")
    assert result.exit_code == 2 and "not a whole openbook index (no passages.arrow)" in " ".join(result.output.split())
