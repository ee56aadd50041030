"""The encoder multiple-choice reader (`readers.encoder`) on the shipped all-MiniLM-L6-v2, fine-tuned
once per session: missing options, its time, batched scoring, truncation."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.records import Question
from tests.conftest import ENCODER_BASE, fact_exam

pytest.importorskip("transformers", reason="the encoder reader needs transformers (pip install -e .[dev])")


@pytest.fixture
def trained(trained_encoder):
    return trained_encoder


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

    _, tokenizer = load_multiple_choice(ENCODER_BASE)
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
