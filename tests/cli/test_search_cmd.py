"""`openbook search` and `openbook eval-retrieval`: bad options refused before any work, and the
retrieval they take is the one `answer` takes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from openbook.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


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
