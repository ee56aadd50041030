"""`openbook answer` and `openbook eval`: the options refused before a model loads, the run folder
written and scored, stopped runs resumed, the default cascade and its switches (the smallest shipped
model, SmolLM2-135M, on llama.cpp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openbook.answer import pool
from openbook.backends import load_backend
from openbook.cli.main import app
from openbook.models import resolve_model
from tests.conftest import TINY_MODEL, needs_llama_cpp


def test_answer_refuses_a_bad_retrieval_before_loading_a_model(tmp_path):
    from typer.testing import CliRunner

    from openbook.cli.main import app

    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B\n1,Why?,a,b\n")
    result = CliRunner().invoke(
        app,
        [
            "answer",
            str(exam),
            "--out",
            str(tmp_path / "out"),
            "--model",
            "/nonexistent.gguf",
            "--retrieval",
            "bm25",
            "--retrieval",
            "dense/every",
        ],
    )
    assert result.exit_code == 2 and "unknown query form 'every'" in result.output


def cli_index(tmp_path, articles_jsonl):
    """The CLI runner, and an index built by `openbook index` as a user would."""
    runner = CliRunner()
    index = tmp_path / "index"
    assert runner.invoke(app, ["index", str(articles_jsonl), "--out", str(index), "--quiet"]).exit_code == 0
    return runner, index


@needs_llama_cpp
def test_eval_command_writes_the_run_and_prints_scores(tmp_path, articles_jsonl):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,D,E,answer\n"
        "1,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,,,B\n"
        "2,What do plants release in photosynthesis?,Oxygen,Argon,Neon,Xenon,Radon,A\n"
    )
    config = tmp_path / "run.toml"
    config.write_text(
        f'[answer]\nmodel = "{TINY_MODEL}"\nreaders = ["letter", "yesno"]\nrotations = 2\n'
        "context_tokens = 200\nn_ctx = 1024\nprogress = false\n"
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", str(exam), "--index", str(index), "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "MAP@3" in result.output and "openbook eval" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 2 and metrics["settings"]["readers"] == ["letter", "yesno"]
    assert metrics["settings"]["model"] == TINY_MODEL
    # an exam without answers can be answered but not evaluated
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("id,prompt,A,B\n1,Is the sky blue?,Yes,No\n")
    result = runner.invoke(app, ["eval", str(unlabelled), "--out", str(tmp_path / "x"), "--config", str(config)])
    assert result.exit_code == 2 and "no answers to evaluate against" in result.output
    partly = tmp_path / "partly.csv"  # answers only after the questions --limit keeps
    partly.write_text("id,prompt,A,B,answer\n1,Is the sky blue?,Yes,No,\n2,Is grass green?,Yes,No,A\n")
    result = runner.invoke(
        app, ["eval", str(partly), "--out", str(tmp_path / "z"), "--limit", "1", "--config", str(config)]
    )
    assert result.exit_code == 2 and "in its first 1 questions" in " ".join(result.output.split())
    result = runner.invoke(app, ["answer", str(unlabelled), "--out", str(tmp_path / "y"), "--config", str(config)])
    assert result.exit_code == 0 and (tmp_path / "y" / "submission.csv").exists()
    assert not (tmp_path / "y" / "metrics.json").exists()


@needs_llama_cpp
def test_a_stopped_run_resumes_with_its_answers_kept(tmp_path, articles_jsonl):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,answer\n"
        "1,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,B\n"
        "2,What do plants release in photosynthesis?,Oxygen,Argon,Neon,A\n"
        "3,What is the speed of light in vacuum?,299792458 m/s,12 m/s,340 m/s,A\n"
    )
    out = tmp_path / "run"

    def command(context_tokens: int = 120) -> list[str]:
        return [
            "eval",
            str(exam),
            "--index",
            str(index),
            "--out",
            str(out),
            "--model",
            TINY_MODEL,
            "--context-tokens",
            str(context_tokens),
            "--n-ctx",
            "1024",
            "--quiet",
        ]

    assert runner.invoke(app, [*command(), "--limit", "2"]).exit_code == 0  # stands for a run stopped after 2
    first = (out / "predictions.jsonl").read_text().splitlines()
    assert len(first) == 2
    with (out / "predictions.jsonl").open("ab") as handle:
        handle.write('{"id": "3", "title": "Å'.encode()[:-1])  # a kill cut the line inside "Å"
    result = runner.invoke(app, [*command(), "--resume"])
    assert result.exit_code == 0, result.output
    assert "1 questions answered now, 2 before" in " ".join(result.output.split())
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert lines[:2] == first and json.loads(lines[2])["id"] == "3"
    assert [line.split(",")[0] for line in (out / "submission.csv").read_text().splitlines()] == ["id", "1", "2", "3"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 3
    changed = runner.invoke(app, [*command(60), "--resume"])
    assert changed.exit_code == 2 and "context_tokens 120 -> 60" in " ".join(changed.output.split())
    # a new run into the same folder moves the earlier answers aside instead of losing them
    assert runner.invoke(app, [*command(), "--limit", "1"]).exit_code == 0
    assert (out / "predictions.previous.jsonl").read_text().splitlines() == lines
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1


@needs_llama_cpp
def test_a_resumed_letter_prior_run_answers_as_one_uninterrupted_run(tmp_path):
    """The prior is fitted over the whole pass: answers logged before the stop are divided by the
    prior fitted over every question, as if the run had not stopped."""
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,answer\n"
        "1,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,B\n"
        "2,What do plants release in photosynthesis?,Oxygen,Argon,Neon,A\n"
        "3,What is the speed of light in vacuum?,299792458 m/s,12 m/s,340 m/s,A\n"
    )

    def run(out: Path, *extra: str) -> list[dict]:
        result = CliRunner().invoke(
            app,
            [
                "eval",
                str(exam),
                "--out",
                str(out),
                "--model",
                TINY_MODEL,
                "--n-ctx",
                "1024",
                "--triage",
                "none",
                "--rotations",
                "3",
                "--letter-prior",
                "--quiet",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]

    whole = run(tmp_path / "whole")
    run(tmp_path / "stopped", "--limit", "2")  # stands for a run stopped after 2 questions
    resumed = run(tmp_path / "stopped", "--resume")
    assert [r["id"] for r in resumed] == ["1", "2", "3"]
    for again, once in zip(resumed, whole):
        assert again["probabilities"] == pytest.approx(once["probabilities"], abs=1e-6)


@needs_llama_cpp
def test_the_cli_cascades_by_default_and_triage_none_turns_it_off(tmp_path, articles_jsonl):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    # the Photosynthesis article holds 3 of the prompt's 4 words: the re-read reads that context
    exam.write_text(
        "id,prompt,A,B,C,answer\n1,Which gas is released as a by-product of photosynthesis?,Oxygen,Argon,Neon,A\n"
    )

    def run(out: str, *extra: str) -> dict:
        result = runner.invoke(
            app,
            [
                "eval",
                str(exam),
                "--index",
                str(index),
                "--out",
                str(tmp_path / out),
                "--model",
                TINY_MODEL,
                "--context-tokens",
                "120",
                "--n-ctx",
                "1024",
                "--quiet",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / out / "run.json").read_text())

    cascaded = run("default", "--budget-seconds", "inf")  # a loaded CPU may spend 10 s on the triage pass
    assert cascaded["cascade"]["reread"] == 1 and cascaded["reader_names"] == ["letter-rot3@triage", "letter"]
    assert run("single", "--triage", "none")["cascade"] is False
    debiased = run(
        "debiased", "--triage-rotations", "2", "--budget-seconds", "inf"
    )  # a debiased triage pass, a plain main stage
    assert debiased["reader_names"] == ["letter-rot2@triage", "letter"]
    assert cascaded["plan"]["letter_prior"] is False and run("prior", "--letter-prior")["plan"]["letter_prior"] is True
    logged = [json.loads(line) for line in (tmp_path / "prior" / "predictions.jsonl").read_text().splitlines()]
    assert len(logged[0]["orders"]["letter-rot3@triage"]["logprobs"]) == 3  # the reading the prior was fitted on
    result = runner.invoke(
        app,
        [
            "eval",
            str(exam),
            "--out",
            str(tmp_path / "x"),
            "--model",
            TINY_MODEL,
            "--triage",
            "none",
            "--budget-seconds",
            "5",
        ],
    )
    assert result.exit_code == 2 and "needs triage readers" in result.output


@needs_llama_cpp
def test_resuming_a_cascade_stopped_before_its_main_stage_rereads_the_logged_triage_answers(
    tmp_path, articles_jsonl, monkeypatch
):
    runner, index = cli_index(tmp_path, articles_jsonl)
    exam = tmp_path / "exam.csv"
    exam.write_text(
        "id,prompt,A,B,C,answer\n1,What do plants release in photosynthesis?,Oxygen,Argon,Neon,A\n"
        "2,Which organelle is the powerhouse of the cell?,Nucleus,Mitochondrion,Ribosome,B\n"
    )

    triage_model = str(resolve_model(TINY_MODEL))  # the same weights under another name: a separate triage model

    def run(out: Path, *extra: str) -> str:
        result = runner.invoke(
            app,
            [
                "eval",
                str(exam),
                "--index",
                str(index),
                "--out",
                str(out),
                "--model",
                TINY_MODEL,
                "--triage-model",
                triage_model,
                "--context-tokens",
                "120",
                "--n-ctx",
                "1024",
                "--budget-seconds",
                "inf",
                "--quiet",
                *extra,
            ],
        )
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    out = tmp_path / "run"
    run(out)
    # stands for a kill during the main stage: the triage answers logged, the re-read ones not yet
    triage = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    for record in triage:  # as the triage pass logged them; marked, to show they are not read again
        assert list(record["readers"]) == ["letter-rot3@triage", "letter"]
        record["readers"] = {"letter-rot3@triage": {"A": 0.34, "B": 0.33, "C": 0.33}}
        record["probabilities"], record["ranking"] = record["readers"]["letter-rot3@triage"], ["A", "B", "C"]
        record["contexts"] = record["contexts"][:1]
        assert set(record.pop("orders")) == {"letter-rot3@triage", "letter"}  # without them, nothing to recalibrate
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in triage))
    state = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({"settings": state["settings"], "status": "running"}))
    loaded = []  # every question was triaged already: only the main stage's model is loaded
    with monkeypatch.context() as patch:
        patch.setattr(pool, "load_backend", lambda *a, **k: loaded.append(a) or load_backend(*a, **k))
        assert "2 first-pass answers taken up again" in run(out, "--resume")
    assert [arguments[1] for arguments in loaded] == [TINY_MODEL]
    final = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in final] == ["1", "2"]
    for record in final:
        assert list(record["readers"]) == ["letter-rot3@triage", "letter"]
        assert record["readers"]["letter-rot3@triage"] == {"A": 0.34, "B": 0.33, "C": 0.33}
        assert [c["retrieval"] for c in record["contexts"]] == ["none", "bm25"]
    resumed_run = json.loads((out / "run.json").read_text())
    assert resumed_run["cascade"]["reread"] == 2
    assert resumed_run["model_paths"]["triage"] is None and resumed_run["model_paths"]["main"].endswith(".gguf")
    assert len((out / "submission.csv").read_text().splitlines()) == 3
    # a cascade that finished leaves its triage answers final: resuming it re-reads nothing
    kept = tmp_path / "kept"
    run(kept, "--escalate-margin", "0")
    resumed = run(kept, "--escalate-margin", "0", "--resume")
    assert "2 questions kept" in resumed and "taken up" not in resumed


@needs_llama_cpp
def test_a_missing_model_names_the_command_that_fetches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBOOK_CACHE", str(tmp_path / "empty-cache"))
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B\n1,Is the sky blue?,Yes,No\n")
    result = CliRunner().invoke(app, ["answer", str(exam), "--out", str(tmp_path / "run"), "--model", TINY_MODEL])
    assert result.exit_code == 2
    assert f"openbook models pull {TINY_MODEL}" in result.output


@needs_llama_cpp
def test_the_cli_reports_a_stopped_run_and_keeps_its_files(tmp_path):
    exam = tmp_path / "exam.csv"
    exam.write_text("id,prompt,A,B,answer\nok,Is the sky blue?,Yes,No,A\nlong,Why? " + "very " * 1500 + ",a,b,A\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["eval", str(exam), "--out", str(out), "--model", TINY_MODEL, "--n-ctx", "512", "--quiet"]
    )
    assert result.exit_code == 2
    assert "stopped at question 'long'" in result.output and "1 questions answered before it" in result.output
    assert json.loads((out / "metrics.json").read_text())["count"] == 1
