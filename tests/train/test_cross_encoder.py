"""`openbook train cross-encoder`: a few steps on a tiny exam, and the model it saves serving `+cross:`."""

from __future__ import annotations

import pytest

from openbook.errors import OpenbookError
from openbook.index.build import build_index
from openbook.records import Question
from openbook.retrieve import Retrieval, RetrievalSpec
from tests.conftest import ENCODER_BASE, SEMANTIC_QUERY


def test_cross_encoder_trains_saves_and_reranks(tmp_path, articles_jsonl, minilm):
    """A few steps on a tiny exam: the command runs end to end and its model serves `+cross:`."""
    from typer.testing import CliRunner

    from openbook.cli.main import app

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,context\n"
        "1,Which part of a cell makes its energy?,nucleus,mitochondrion,"
        '"The mitochondrion is the powerhouse of the cell. It produces ATP by cellular respiration."\n'
        '2,How fast is light?,fast,slow,"The speed of light in vacuum is exactly 299792458 metres per second."\n'
    )
    model = tmp_path / "cross"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "cross-encoder",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(model),
            "--negatives",
            "2",
            "--batch-size",
            "4",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (model / "config.json").is_file() and "pairs" in result.output
    retrieval = Retrieval(index, candidates=4)
    (reranked,) = retrieval.search(
        [Question("q", SEMANTIC_QUERY, {"A": "x"})], RetrievalSpec.parse(f"bm25+cross:{model}"), k=3
    )
    assert reranked and reranked[0].retriever.endswith(f">cross:{model}")
    assert [h.score for h in reranked] == sorted((h.score for h in reranked), reverse=True)
    # an embedder is no cross-encoder: its scoring head would start random, its order noise
    with pytest.raises(OpenbookError, match="is not a cross-encoder with one relevance score"):
        retrieval.search(
            [Question("q", SEMANTIC_QUERY, {"A": "x"})], RetrievalSpec.parse(f"bm25+cross:{ENCODER_BASE}"), k=3
        )
    for flag, value in (("--epochs", "0"), ("--batch-size", "0"), ("--negatives", "-1")):
        result = CliRunner().invoke(
            app,
            [
                "train",
                "cross-encoder",
                str(exam),
                "--index",
                str(index),
                "--out",
                str(tmp_path / "bad"),
                flag,
                value,
                "--quiet",
            ],
        )
        assert result.exit_code == 2 and f"{flag} must be" in result.output, result.output
