"""`train.encoder`: fine-tuning the encoder reader, resumed after a stop to the same model, and the
settings no run can train with refused before anything loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import ENCODER_BASE, fact_exam

pytest.importorskip("transformers", reason="the encoder reader needs transformers (pip install -e .[dev])")


@pytest.fixture
def index(fact_index):
    return fact_index


@pytest.fixture
def trained(trained_encoder):
    return trained_encoder


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


def test_a_stopped_training_resumes_to_the_same_model(tmp_path, index, monkeypatch):
    import torch

    import openbook.train.encoder as training
    from openbook.errors import OpenbookError
    from openbook.readers.encoder import load_multiple_choice

    settings = training.EncoderTraining(
        base=ENCODER_BASE,
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
