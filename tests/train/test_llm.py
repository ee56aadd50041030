"""`train.llm`: LoRA yes/no training on the transformers backend (SmolLM2-135M), resumed, and the
adapter it saves loaded back into the yes/no reader."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.readers import YesNoReader, read_question
from tests.conftest import TINY_MODEL

pytest.importorskip("transformers", reason="the transformers backend needs transformers (pip install -e .[dev])")
pytest.importorskip("gguf", reason="dequantizing the shipped GGUF needs gguf (pip install -e .[dev])")


def test_lora_yes_no_training_resumes_and_loads_back_into_the_reader(tmp_path, articles_jsonl):
    pytest.importorskip("peft")
    import torch

    from openbook.backends import load_backend
    from openbook.index.build import build_index
    from openbook.train.data import load_data
    from openbook.train.llm import LLMTraining, train_llm, yes_no_scores
    from tests.conftest import fact_exam

    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    questions = fact_exam(1)
    settings = LLMTraining(
        model=TINY_MODEL,
        epochs=2,
        batch_size=2,
        learning_rate=1e-3,
        context_tokens=48,
        validation_fraction=0.25,
        checkpoint_every=2,
    )
    summary = train_llm(questions, index, tmp_path / "lora", settings, show_progress=False)
    history = summary["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["final_loss"] < history[0]["final_loss"]
    assert (tmp_path / "lora" / "adapter_config.json").is_file()
    assert 0 < summary["trainable_parameters"] < 10_000_000  # adapters only, not the 135M base
    trained_on, _ = load_data(tmp_path / "lora")  # the questions with the contexts they were trained with

    def training_loss(backend_) -> float:
        reader = YesNoReader(backend_)
        losses = []
        with torch.inference_mode():
            for question, context in trained_on:
                scores = yes_no_scores(backend_, reader, question, context)
                labels = torch.tensor([float(letter == question.answer) for letter in question.letters])
                losses.append(float(torch.nn.functional.binary_cross_entropy_with_logits(scores, labels)))
        return float(np.mean(losses))

    base = load_backend("transformers", TINY_MODEL, n_ctx=1024)
    tuned = load_backend("transformers", TINY_MODEL, n_ctx=1024, adapter=str(tmp_path / "lora"))
    assert training_loss(tuned) < training_loss(base) - 0.05  # the saved adapter carries what was learnt
    # the head trained is the head the yes/no reader reads: softmax of the trained scores
    question, context = trained_on[0]
    with torch.inference_mode():
        expected = torch.softmax(yes_no_scores(tuned, YesNoReader(tuned), question, context), dim=0).numpy()
    (output,) = read_question([YesNoReader(tuned)], tuned, question, context)
    assert np.allclose([output.probabilities[letter] for letter in question.letters], expected, atol=1e-4)
    (plain,) = read_question([YesNoReader(base)], base, question, context)
    assert max(abs(plain.probabilities[k] - output.probabilities[k]) for k in plain.probabilities) > 1e-3
    # finished: resuming has nothing left to do and gives back the same history
    again = train_llm(questions, index, tmp_path / "lora", settings, resume=True, show_progress=False)
    assert again["history"] == history
