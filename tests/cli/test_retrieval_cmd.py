"""`openbook index --dense`, `openbook eval-retrieval` and `openbook search` on a dense index."""

from __future__ import annotations

import json

from tests.conftest import ARTICLES, ENCODER_BASE, SEMANTIC_QUERY


def test_index_and_eval_retrieval_commands(tmp_path, articles_jsonl, minilm):
    from typer.testing import CliRunner

    from openbook.cli.main import app

    runner = CliRunner()
    index = tmp_path / "index"
    built = runner.invoke(app, ["index", str(articles_jsonl), "--out", str(index), "--dense", ENCODER_BASE, "--quiet"])
    assert built.exit_code == 0, built.output
    assert json.loads((index / "manifest.json").read_text())["indexes"]["dense"]["vectors"] == 4
    again = runner.invoke(app, ["index", str(articles_jsonl), "--out", str(index), "--dense", ENCODER_BASE, "--quiet"])
    assert again.exit_code == 0 and "kept" in again.output  # nothing rebuilt
    exam = tmp_path / "exam.csv"
    sources = {title: text for _, title, text in ARTICLES}  # each question written from a whole article
    exam.write_text(
        "id,prompt,A,B,context\n"
        f'1,Which part of a cell makes its energy?,nucleus,mitochondrion,"{sources["Mitochondrion"]}"\n'
        f'2,How fast is light?,fast,slow,"{sources["Speed of light"]}"\n'
        "3,No source here,a,b,\n"
    )
    out = tmp_path / "scores"  # a folder: retrieval.json in it
    result = runner.invoke(
        app,
        [
            "eval-retrieval",
            str(exam),
            "--index",
            str(index),
            "--retrieval",
            "bm25",
            "--retrieval",
            "dense",
            "--retrieval",
            "hybrid-rrf/per-option+edit",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {row["pipeline"]: row for row in json.loads((out / "retrieval.json").read_text())["results"]}
    assert set(rows) == {"bm25", "dense", "hybrid-rrf/per-option+edit"}
    assert rows["dense"]["questions"] == 2 and rows["dense"]["recall@1"] == 1.0 and rows["dense"]["mrr"] == 1.0
    assert "R@5" in result.output
    bad = runner.invoke(app, ["eval-retrieval", str(exam), "--index", str(index), "--retrieval", "sparse"])
    assert bad.exit_code == 2 and "unknown retriever" in bad.output
    # search's default is answer's: auto, the hybrid with the embedding reranker where the index is dense
    searched = {
        given: runner.invoke(app, ["search", str(index), SEMANTIC_QUERY, "-k", "2", *given]).output
        for given in ((), ("--retrieval", "hybrid-rrf+embed"), ("--retrieval", "bm25"))
    }
    assert "Mitochondrion" in searched[()] and searched[()] == searched[("--retrieval", "hybrid-rrf+embed")]
    assert searched[()] != searched[("--retrieval", "bm25")]
