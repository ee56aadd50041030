"""The llama.cpp backend on the smallest shipped model (SmolLM2-135M): the chat template from the
GGUF, and one evaluation of a shared prefix for every continuation."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def backend(tiny_llm):
    return tiny_llm


def test_chat_template_comes_from_the_gguf(backend):
    template = backend.template("system text")
    assert "<|im_start|>system\nsystem text" in template.head and template.head.endswith("<|im_start|>user\n")
    assert template.tail == "<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("batch_continuations", [False, True])
def test_shared_prefix_equals_scoring_each_continuation_from_scratch(backend, batch_continuations, monkeypatch):
    monkeypatch.setattr(backend, "batch_continuations", batch_continuations)
    prefix = backend.tokenize(backend.template(None).head + "The capital of France is a city called", at_start=True)
    continuations = [
        backend.tokenize(t, at_start=False)
        for t in [
            " Paris.",
            " Lyon, which",
            " Marseille",
            " the",
            " Nice and",
            " Lille",
            " Toulouse",
            " Brest",
            " Rouen",
            " Caen",
        ]
    ]  # more than one prefix group of max_sequences - 1
    targets = backend.single_token_ids([" The", " It", ".", ","])
    shared = backend.next_token_logprobs(prefix, continuations, targets, share_prefix=True)
    naive = backend.next_token_logprobs(prefix, continuations, targets, share_prefix=False)
    assert shared.shape == (10, len(targets))
    np.testing.assert_allclose(np.exp(shared), np.exp(naive), atol=1e-3)


@pytest.mark.parametrize("batch_continuations, groups", [(False, [3]), (True, [1, 1, 1])])
def test_long_continuations_share_one_prefix_evaluation_unless_batched(
    backend, batch_continuations, groups, monkeypatch
):
    """Decoded one call each, continuations of 600 tokens (1,800 together, n_ctx 1,024) need one
    prefix evaluation; batched into one decode, at most n_ctx tokens go together."""
    monkeypatch.setattr(backend, "batch_continuations", batch_continuations)
    assert [len(group) for group in backend._groups([[1] * 600] * 3)] == groups


def test_the_vocabulary_alone_tokenizes_and_templates_as_the_whole_model_and_reads_nothing(backend):
    from openbook.backends.llama_cpp import LlamaCppBackend
    from tests.conftest import TINY_MODEL

    vocabulary = LlamaCppBackend(TINY_MODEL, tokens_only=True)  # what a reading pool's driver holds
    text = "Which organelle produces ATP? <|im_end|> Mitochondrion."
    for at_start, special in ((True, True), (False, False)):
        assert vocabulary.tokenize(text, at_start, special) == backend.tokenize(text, at_start, special)
    assert vocabulary.template("system") == backend.template("system")
    assert vocabulary.single_token_ids(["A", " A", "Yes"]) == backend.single_token_ids(["A", " A", "Yes"])
    with pytest.raises(RuntimeError, match="vocabulary alone"):
        vocabulary.next_token_logprobs([1, 2], [[3]], [4])
