"""The encoder multiple-choice reader and its training, on the shipped all-MiniLM-L6-v2 encoder."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from openbook.cli.main import app
from openbook.models import MODELS, ModelStore
from openbook.records import Question
from tests.conftest import fact_exam

pytest.importorskip("transformers", reason="the encoder reader needs transformers (pip install -e .[dev])")

BASE = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from openbook.index.build import build_index
    from tests.conftest import ARTICLES, write_jsonl

    folder = tmp_path_factory.mktemp("encoder")
    corpus = write_jsonl(folder / "articles.jsonl", [{"id": i, "title": t, "text": x} for i, t, x in ARTICLES])
    build_index([corpus], folder / "index", show_progress=False)
    return folder / "index"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, index):
    """An encoder fine-tuned for a few epochs on the fact questions (validation: 4 of them)."""
    from openbook.train.encoder import EncoderTraining, train_encoder

    ModelStore().pull(MODELS[BASE], log=lambda _: None)
    out = tmp_path_factory.mktemp("trained") / "encoder"
    settings = EncoderTraining(
        base=BASE,
        epochs=6,
        batch_size=4,
        learning_rate=5e-4,
        max_tokens=96,
        context_tokens=48,
        validation_fraction=0.25,
        checkpoint_every=3,
    )
    summary = train_encoder(fact_exam(), index, out, settings, show_progress=False)
    return out, summary


def option_probability_of_answers(model, index, questions) -> float:
    from openbook.answer import AnswerOptions, execute, make_plan

    options = AnswerOptions(
        index=index,
        readers=["encoder"],
        encoder=str(model),
        encoder_tokens=96,
        context_tokens=48,
        model="no-such-llm",
        triage_readers=[],
        progress=False,
    )
    run = execute(make_plan(options), questions)  # no language model is loaded for an encoder-only run
    return float(np.mean([r.prediction.probabilities[r.question.answer] for r in run.results]))


def test_training_writes_a_model_that_learnt_the_training_questions(trained, index):
    out, summary = trained
    assert (out / "config.json").is_file() and (out / "data.jsonl").is_file() and (out / "checkpoint").is_dir()
    assert summary["train_questions"] == 12 and summary["validation_questions"] == 4
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3, 4, 5, 6]
    assert summary["history"][-1]["final_loss"] < summary["history"][0]["final_loss"]
    assert all(0 <= h["validation_map@3"] <= 1 for h in summary["history"])
    training_ids = set(q.id for q in fact_exam()) - set(summary["validation_ids"])
    training = [q for q in fact_exam() if q.id in training_ids]
    # the untrained head is at chance (about 0.2); the trained model puts most weight on the answers
    assert option_probability_of_answers(out, index, training) > 0.5


def test_encoder_reader_handles_missing_options_and_counts_its_time(trained):
    from openbook.readers import EncoderReader
    from openbook.records import Context

    reader = EncoderReader(trained[0], max_tokens=96)
    question = Question("q", "What do mitochondria produce?", {"A": "ATP", "B": "Glucose", "D": "Starch"}, "A")
    probabilities = reader.probabilities(question, Context("The mitochondrion produces ATP.", ("2:0",), 0))
    assert set(probabilities) == {"A", "B", "D"} and sum(probabilities.values()) == pytest.approx(1.0)
    assert reader.model_seconds > 0
    # batched scoring gives the same scores as one question at a time, padding notwithstanding
    five = fact_exam(1)[0]
    context = Context("", (), 0)
    batched = reader.scores([question, five], [context, context])
    assert np.allclose(batched[0], reader.scores([question], [context])[0], atol=1e-4)
    assert np.allclose(batched[1], reader.scores([five], [context])[0], atol=1e-4)


def test_truncation_cuts_context_then_the_question_start_never_the_option():
    from openbook.readers.encoder import encode_options, load_multiple_choice
    from openbook.records import Context

    _, tokenizer = load_multiple_choice(BASE)
    question = Question("q", "word " * 230 + "which fruit is it?", {"A": "the red apple", "B": "the red pear"})
    features, _ = encode_options(tokenizer, [question], [Context("context " * 300, ("p",), 300)], 128)
    rows = features["input_ids"][0]
    assert rows.shape[-1] == 128 and not bool((rows[0] == rows[1]).all())
    for row, option in zip(rows, ("apple", "pear")):
        assert tokenizer.decode(row).endswith(f"which fruit is it? the red {option} [SEP]")
    short = Question("s", "What do plants release?", {"A": "oxygen", "B": "argon"})
    features, _ = encode_options(tokenizer, [short], [Context("Plants release oxygen.", ("p",), 4)], 128)
    assert (
        tokenizer.decode(features["input_ids"][0][0], skip_special_tokens=True)
        == "plants release oxygen. what do plants release? oxygen"
    )  # everything fits: nothing cut


def test_a_stopped_training_resumes_to_the_same_model(tmp_path, index, monkeypatch):
    import torch

    import openbook.train.encoder as training
    from openbook.errors import OpenbookError
    from openbook.readers.encoder import load_multiple_choice

    settings = training.EncoderTraining(
        base=BASE,
        epochs=1,
        batch_size=2,
        max_tokens=64,
        context_tokens=32,
        validation_fraction=0.25,
        checkpoint_every=2,
    )
    questions = fact_exam(1)
    training.train_encoder(questions, index, tmp_path / "whole", settings, show_progress=False)

    real_loss, calls = training.option_loss, []

    def stop_at_third_step(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*args)

    monkeypatch.setattr(training, "option_loss", stop_at_third_step)
    with pytest.raises(KeyboardInterrupt):
        training.train_encoder(questions, index, tmp_path / "stopped", settings, show_progress=False)
    assert json.loads((tmp_path / "stopped" / "checkpoint" / "state.json").read_text())["step"] == 2
    monkeypatch.setattr(training, "option_loss", real_loss)
    # as if stopped between setting that checkpoint aside and putting the next one in place
    (tmp_path / "stopped" / "checkpoint").rename(tmp_path / "stopped" / "checkpoint.previous")
    with pytest.raises(OpenbookError, match="--resume"):
        training.train_encoder(questions, index, tmp_path / "stopped", settings, show_progress=False)
    with pytest.raises(OpenbookError, match="other settings"):  # other questions (another --exclude) are another run
        training.train_encoder(questions[1:], index, tmp_path / "stopped", settings, resume=True, show_progress=False)
    training.train_encoder(questions, index, tmp_path / "stopped", settings, resume=True, show_progress=False)
    whole, _ = load_multiple_choice(str(tmp_path / "whole"))
    resumed, _ = load_multiple_choice(str(tmp_path / "stopped"))
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
    other = training.EncoderTraining(**{**settings.__dict__, "learning_rate": 1e-3})
    with pytest.raises(OpenbookError, match="other settings"):
        training.train_encoder(questions, index, tmp_path / "stopped", other, resume=True, show_progress=False)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"epochs": 0}, "--epochs must be >= 1"),
        ({"batch_size": 0}, "--batch-size must be >= 1"),
        ({"checkpoint_every": 0}, "--checkpoint-every must be >= 1"),
        ({"validation_fraction": 1.0}, "0 to below 1"),
        ({"max_questions": 0}, "--max-questions"),
        ({"learning_rate": 0.0}, "--learning-rate"),
    ],
)
def test_options_no_run_can_train_with_are_refused_before_anything_loads(tmp_path, change, problem):
    from openbook.errors import ConfigError
    from openbook.train.encoder import EncoderTraining, train_encoder

    settings = EncoderTraining(**{**EncoderTraining().__dict__, **change})
    with pytest.raises(ConfigError, match=problem):
        train_encoder(fact_exam(1), tmp_path / "no-index", tmp_path / "out", settings, show_progress=False)
    assert not (tmp_path / "out").exists()


def test_excluded_and_repeated_prompts_are_not_trained_on():
    from openbook.train.data import split, training_questions

    exam = fact_exam(1)
    kept = training_questions([exam, exam[:2]], exclude=[exam[0]])
    assert [q.prompt for q in kept] == [q.prompt for q in exam[1:]]
    assert kept[0].id == "0:0-1"
    train, validation = split(kept, 0.25, seed=1)
    assert len(validation) == 2 and not {q.id for q in train} & {q.id for q in validation}
    assert split(kept, 0.25, seed=1) == (train, validation)


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


def test_cascade_escalates_the_hardest_questions_within_the_budget(trained, index, tmp_path):
    pytest.importorskip("llama_cpp")
    from openbook.answer import AnswerOptions, execute, make_plan
    from openbook.answer.decide import margin
    from openbook.ensemble import Ensemble
    from openbook.errors import ConfigError
    from openbook.records import FRESH_RUN, EarlierRun

    ModelStore().pull(MODELS["smollm2-135m-instruct"], log=lambda _: None)
    questions = fact_exam(1)
    base = AnswerOptions(
        index=index,
        readers=["encoder"],
        encoder=str(trained[0]),
        encoder_tokens=96,
        context_tokens=48,
        model="smollm2-135m-instruct",
        n_ctx=1024,
        triage_readers=[],
        progress=False,
    )

    def answer(options: AnswerOptions, earlier: EarlierRun = FRESH_RUN):
        return execute(make_plan(options), questions, earlier=earlier)

    cheap = answer(base)
    margins = {r.question.id: margin(r.prediction) for r in cheap.results}
    alone = {r.question.id: r.prediction.probabilities for r in cheap.results}
    threshold = sorted(margins.values())[3]  # the three hardest questions
    # the encoder triages (same context as alone), the letter reader re-reads the hardest
    cascade = replace(base, readers=["letter"], triage_readers=["encoder"], triage_context_tokens=48)
    run = answer(replace(cascade, escalate_margin=threshold, budget_seconds=math.inf))
    escalated = {r.question.id for r in run.results if len(r.outputs) == 2}
    assert escalated == {qid for qid, m in margins.items() if m < threshold} and len(escalated) == 3
    assert run.cascade.reread == 3 and run.cascade.readers == ("letter",)
    assert run.cascade.budget_seconds is None  # inf: the margin alone decides
    assert run.reader_names == ("encoder@triage", "letter")  # whichever questions were re-read
    main_decides = answer(replace(cascade, escalate_margin=threshold, budget_seconds=math.inf, average_stages=False))
    for result, by_main in zip(run.results, main_decides.results, strict=True):
        assert result.outputs[0].reader == "encoder@triage"
        if result.question.id in escalated:  # unfitted, the mean of both stages decides, or the main reader alone
            triage, main = (output.probabilities for output in result.outputs)
            assert result.prediction.probabilities == pytest.approx({k: (triage[k] + main[k]) / 2 for k in main})
            assert by_main.prediction.probabilities == pytest.approx(by_main.outputs[1].probabilities)
            assert by_main.prediction.probabilities != pytest.approx(result.prediction.probabilities)
        else:
            assert result.prediction.probabilities == pytest.approx(result.outputs[0].probabilities)
            assert result.prediction.probabilities == pytest.approx(alone[result.question.id])
            assert by_main.prediction.probabilities == pytest.approx(result.prediction.probabilities)
    assert set(run.model_paths) == {"triage", "main"} and run.model_paths["main"].endswith(".gguf")
    # a budget the triage pass has spent: the main stage is not even loaded
    tight = answer(replace(cascade, budget_seconds=0.001))
    assert tight.cascade.reread == 0 and tight.cascade.stopped_by_budget
    assert tight.model_paths["main"] is None
    per_question = answer(replace(cascade, budget_per_question=1e-6))
    assert per_question.cascade.budget_seconds == pytest.approx(len(questions) * 1e-6)
    assert per_question.cascade.reread == 0
    # resumed: the questions earlier runs answered count in the budget, and so does the time they took
    resumed = replace(cascade, escalate_margin=threshold, budget_per_question=1000.0)
    answered = frozenset(q.id for q in questions[:2])
    ample = answer(resumed, EarlierRun(answered=answered, seconds=10.0))
    assert ample.cascade.budget_seconds == pytest.approx(1000.0 * len(questions))
    assert ample.cascade.reread > 0 and len(ample.results) == len(questions) - 2
    answering = ample.seconds.total - ample.seconds.load_model  # s/question over the whole run
    assert ample.seconds.per_question == pytest.approx((10.0 + answering) / len(questions))
    spent = answer(resumed, EarlierRun(seconds=1000.0 * len(questions)))
    assert spent.cascade.reread == 0 and spent.cascade.stopped_by_budget
    assert spent.cascade.earlier_runs_seconds == 1000.0 * len(questions)
    with pytest.raises(ConfigError, match="budget once"):
        make_plan(replace(cascade, budget_seconds=1.0, budget_per_question=1.0))
    with pytest.raises(ConfigError, match=">= 0"):
        make_plan(replace(cascade, budget_seconds=math.nan))
    # a fitted ensemble decides the re-read questions; the triage outputs it was not fitted on are averaged
    ensemble = tmp_path / "ensemble.json"
    Ensemble("weighted", ["letter"], temperatures={"letter": 2.0}, weights={"letter": 1.0}).save(ensemble)
    fitted = answer(replace(cascade, escalate_margin=threshold, budget_seconds=math.inf, ensemble=ensemble))
    for result in fitted.results:
        assert result.prediction.calibrated == (result.question.id in escalated)
        if result.question.id not in escalated:
            assert result.prediction.probabilities == pytest.approx(alone[result.question.id])
    # a main stage that cannot load stops the run with every triage answer kept
    broken = answer(replace(cascade, model=str(tmp_path / "missing.gguf"), triage_model="smollm2-135m-instruct"))
    assert broken.failure.startswith("loading the main stage") and len(broken.results) == len(questions)
    # the main stage would read nothing new: no cascade
    same = replace(base, triage_readers=["encoder"], triage_context_tokens=48)
    assert not make_plan(same).is_cascade
    same_run = execute(make_plan(same), questions[:2])
    assert same_run.cascade is None and [o.reader for o in same_run.results[0].outputs] == ["encoder"]
