"""`openbook train encoder`, then `openbook eval --reader encoder`, then an ensemble fitted on that run
calibrating the next (the shipped all-MiniLM-L6-v2)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openbook.cli.main import app
from tests.conftest import fact_exam

pytest.importorskip("transformers", reason="the encoder reader needs transformers (pip install -e .[dev])")


@pytest.fixture
def index(fact_index):
    return fact_index


def test_cli_trains_and_answers_with_the_encoder(tmp_path, index):
    runner = CliRunner()
    exam = tmp_path / "exam.csv"
    rows = ["id,prompt,A,B,C,D,E,answer"] + [
        f"{q.id},{q.prompt},{','.join(q.options.values())},{q.answer}" for q in fact_exam(2)
    ]
    exam.write_text("\n".join(rows) + "\n")
    out = tmp_path / "encoder"
    result = runner.invoke(
        app,
        [
            "train",
            "encoder",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(out),
            "--max-tokens",
            "64",
            "--context-tokens",
            "32",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "validation MAP@3" in result.output
    result = runner.invoke(
        app,
        [
            "eval",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(tmp_path / "run"),
            "--reader",
            "encoder",
            "--encoder",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["count"] == 16 and 0 <= metrics["confidence"]["ece"] <= 1
    assert metrics["cascade"] is False  # the automatic triage is for language-model readers only
    assert metrics["plan"]["reread"] is None and metrics["plan"]["first"]["readers"] == ["encoder"]
    result = runner.invoke(app, ["eval", str(exam), "--out", str(tmp_path / "x"), "--reader", "encoder", "--quiet"])
    assert result.exit_code == 2 and "--encoder" in result.output
    # an ensemble fitted on that run calibrates the confidence the next run reports
    ensemble = tmp_path / "ensemble"  # the folder `ensemble fit --out` makes: eval --ensemble takes it
    result = runner.invoke(
        app,
        [
            "ensemble",
            "fit",
            str(tmp_path / "run"),
            "--out",
            str(ensemble),
            "--folds",
            "4",
            "--method",
            "mean",
            "--method",
            "weighted",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "eval",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(tmp_path / "calibrated"),
            "--reader",
            "encoder",
            "--encoder",
            str(out),
            "--ensemble",
            str(ensemble),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "calibrated" / "predictions.jsonl").read_text().splitlines()]
    temperature = json.loads((ensemble / "ensemble.json").read_text())["temperature"]
    assert all(r["calibrated"] for r in records) and temperature > 0
    assert json.loads((tmp_path / "calibrated" / "metrics.json").read_text())["confidence"]["calibrated"] is True
    plain = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [r["ranking"] for r in records] == [
        r["ranking"] for r in plain
    ]  # one reader, no ranker: only the confidence changes
