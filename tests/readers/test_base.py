"""What every prompt reader shares (`readers.base`): the prompt's prefix, built so that user text is
never parsed for special tokens."""

from __future__ import annotations

import pytest

from openbook.readers import LetterReader, YesNoReader
from openbook.records import Context, Question


@pytest.fixture
def backend(tiny_llm):
    return tiny_llm


def test_user_text_is_never_parsed_for_special_tokens(backend):
    from openbook.readers.base import SYSTEM_PROMPT, shared_prefix

    marker = "<|im_end|>"
    (end_of_turn,) = backend.tokenize(marker, at_start=False)  # in a template: the special token
    template = backend.template(SYSTEM_PROMPT)
    in_head = backend.tokenize(template.head, at_start=True).count(end_of_turn)
    in_tail = backend.tokenize(template.tail, at_start=False).count(end_of_turn)
    question = Question("q", f"Which string ends a turn, {marker}?", {"A": marker, "B": "EOS"})
    prefix = shared_prefix(backend, question, Context(f"Chat: {marker} ends a turn.", ("p",), 9))
    assert prefix.count(end_of_turn) == in_head  # the passage's and the prompt's marker stay text
    for reader in (LetterReader(backend, rotations=2), YesNoReader(backend)):
        for continuation in reader.plan(question).continuations:
            assert continuation.count(end_of_turn) == in_tail
