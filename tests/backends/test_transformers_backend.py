"""The transformers backend on the smallest shipped model (SmolLM2-135M, its GGUF dequantized once):
shared-prefix KV reuse, packed permutations, layer-by-layer inference (`backends.layered`)
and questions batched together."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from openbook.models import MODELS, ModelStore
from openbook.readers import LetterReader, YesNoReader, read_question
from openbook.records import Context, Question

pytest.importorskip("transformers", reason="the transformers backend needs transformers (pip install -e .[dev])")
pytest.importorskip("gguf", reason="dequantizing the shipped GGUF needs gguf (pip install -e .[dev])")

TINY_MODEL = "smollm2-135m-instruct"
# float32 on the CPU: the three ways differ only in summation order (batch shapes, cache vs one
# pass), which moves log-probabilities by ~1e-6; 1e-4 on probabilities leaves room for other BLAS
TOLERANCE = 1e-4
CONTEXT = Context(
    "Mitochondrion: The mitochondrion is the powerhouse of the cell. It produces ATP by cellular "
    "respiration. Photosynthesis: green plants release oxygen.",
    ("2:0",),
    0,
)
QUESTIONS = [
    Question(
        "q1",
        "Which organelle produces most of the ATP in a cell?",
        {
            "A": "The nucleus",
            "B": "The mitochondrion",
            "C": "The ribosome",
            "D": "The Golgi apparatus",
            "E": "The cell wall",
        },
        "B",
    ),
    Question("q2", "What do green plants release?", {"A": "Oxygen", "B": "Argon", "D": "Neon"}, "A"),
]


@pytest.fixture(scope="module")
def backend():
    from openbook.backends import load_backend

    ModelStore().pull(MODELS[TINY_MODEL], log=lambda _: None)
    return load_backend("transformers", TINY_MODEL, n_ctx=1024, max_sequences=3)


def probabilities(readers, backend, share_prefix=True):
    return [[o.probabilities for o in read_question(readers, backend, q, CONTEXT, share_prefix)] for q in QUESTIONS]


def assert_same(a, b, tolerance=TOLERANCE):
    for question_a, question_b in zip(a, b):
        for reader_a, reader_b in zip(question_a, question_b):
            assert reader_a.keys() == reader_b.keys()
            assert max(abs(reader_a[k] - reader_b[k]) for k in reader_a) < tolerance


def test_template_and_tokens_match_the_gguf_through_llama_cpp(backend):
    pytest.importorskip("llama_cpp")
    from openbook.backends import load_backend

    llama = load_backend("llama.cpp", TINY_MODEL, n_ctx=512)
    assert backend.template("S") == llama.template("S")
    text = backend.template("S").head + "Which organelle makes ATP?"
    assert backend.tokenize(text, at_start=True) == llama.tokenize(text, at_start=True)


def test_shared_kv_and_packed_rotations_equal_scoring_from_scratch(backend):
    readers = [LetterReader(backend, rotations=5), YesNoReader(backend)]
    scratch = probabilities(readers, backend, share_prefix=False)
    shared = probabilities(readers, backend)  # groups of max_sequences=3: the cache is reused across groups
    backend.packed = True
    try:
        packed = probabilities(readers, backend)
    finally:
        backend.packed = False
    assert_same(shared, scratch)
    assert_same(packed, scratch)
    # and the readers are not trivially uniform: the check compares real distributions
    assert max(scratch[0][0].values()) - min(scratch[0][0].values()) > 1e-3


def test_the_output_head_runs_where_a_continuation_ends_only(backend):
    """Scored from scratch, on a shared cache or packed, the head (49K words here, 150K for Qwen) sees
    a few rows per continuation instead of every token, and the probabilities are those of the head
    run everywhere."""
    assert backend.keeps_logits
    rows = []
    hook = backend.network.lm_head.register_forward_hook(
        lambda _, inputs, __: rows.append(inputs[0].shape[:-1].numel())
    )
    readers = [YesNoReader(backend)]
    runs = {}
    try:
        for keep in (True, False):
            backend.keeps_logits = keep
            for packed, share in ((False, False), (False, True), (True, True)):
                backend.packed = packed
                rows.clear()
                runs[keep, packed, share] = probabilities(readers, backend, share), sum(rows)
    finally:
        hook.remove()
        backend.packed, backend.keeps_logits = False, True
    for packed, share in ((False, False), (False, True), (True, True)):
        kept, kept_rows = runs[True, packed, share]
        everywhere, all_rows = runs[False, packed, share]
        assert_same(kept, everywhere)
        # 8 options in groups of max_sequences=3: a batch's rows × its distinct last positions (≤ 3 × 3)
        assert kept_rows <= 30 < 200 < all_rows


def test_packed_layout_lets_each_option_see_the_prefix_and_itself_only():
    from openbook.backends.transformers_backend import packed_layout

    ids, positions, mask, last = packed_layout([7, 8], [[1, 2], [3]])
    assert ids.tolist() == [7, 8, 1, 2, 3] and positions.tolist() == [0, 1, 2, 3, 2] and last == [3, 4]
    assert mask.int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 1]]


def test_layer_by_layer_gives_the_same_probabilities(backend):
    from openbook.backends import load_backend

    layered = load_backend("transformers-layered", TINY_MODEL, n_ctx=1024)
    readers = [LetterReader(backend, rotations=3), YesNoReader(backend)]
    assert_same(probabilities(readers, layered), probabilities(readers, backend))
    assert_same(probabilities(readers, layered, share_prefix=False), probabilities(readers, backend))
    # one layer's weights at a time: a 30-layer model holds about 1/30 of its layer weights
    total = sum(p.numel() * p.element_size() for n, p in backend.network.named_parameters() if ".layers." in n)
    assert layered.peak_layer_bytes * 20 < total
    # many questions in one walk through the layers give what one question at a time gives
    prefix = backend.tokenize("Question: which is a gas?\n", at_start=True)
    requests = [
        (prefix, [backend.tokenize(" Oxygen", False), backend.tokenize(" Iron", False)], [1, 2]),
        (prefix[:-1], [backend.tokenize(" Neon", False)], [3]),
    ]
    together = layered.score_many(requests)
    for request, scores in zip(requests, together):
        assert np.allclose(scores, layered.score_many([request])[0], atol=1e-4)


def test_questions_batched_together_score_as_one_at_a_time(backend, tmp_path, articles_jsonl):
    from openbook.answer import AnswerOptions, execute, make_plan
    from openbook.index.build import build_index
    from openbook.readers import read_questions

    readers = [LetterReader(backend, rotations=2), YesNoReader(backend)]
    contexts = [CONTEXT, Context("Photosynthesis: green plants release oxygen.", ("1:0",), 0)]
    for share_prefix in (True, False):
        together = read_questions(readers, backend, QUESTIONS, contexts, share_prefix)
        alone = [read_question(readers, backend, q, c, share_prefix) for q, c in zip(QUESTIONS, contexts)]
        assert_same(
            [[o.probabilities for o in outputs] for outputs in together],
            [[o.probabilities for o in outputs] for outputs in alone],
        )
    index = tmp_path / "index"
    build_index([articles_jsonl], index, show_progress=False)
    options = AnswerOptions(
        index=index, model=TINY_MODEL, backend="transformers", context_tokens=120, progress=False, triage_readers=[]
    )
    one = execute(make_plan(options), QUESTIONS, backend=backend)
    batched = execute(make_plan(replace(options, question_batch=2)), QUESTIONS, backend=backend)
    assert_same(
        [[r.prediction.probabilities] for r in batched.results], [[r.prediction.probabilities] for r in one.results]
    )
