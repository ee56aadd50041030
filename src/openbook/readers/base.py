"""What every reader returns, and the prompt text they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from openbook.retrieve.context import Context
from openbook.types import Question

SYSTEM_PROMPT = "You are an expert in science. You answer multiple-choice questions accurately."


@dataclass(frozen=True, slots=True)
class ReaderOutput:
    question_id: str
    reader: str
    probabilities: dict[str, float]  # original option letter -> probability; sums to 1
    evidence: tuple[str, ...] = ()   # passage ids the reader was given
    prompt_tokens: int = 0


class Reader(Protocol):
    name: str

    def read(self, question: Question, context: Context) -> ReaderOutput: ...


def question_block(question: Question, context: Context) -> str:
    """The part of the prompt every option shares: passages, then the question."""
    if context.text:
        return (f"Use the Wikipedia passages below to answer the multiple-choice question.\n\n"
                f"Passages:\n{context.text}\n\nQuestion: {question.prompt}\n")
    return f"Answer the multiple-choice question.\n\nQuestion: {question.prompt}\n"


def logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """log(sum(exp(v))) over the last axis: several spellings of one answer (" A", "A") pooled."""
    top = values.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(values - top).sum(axis=-1, keepdims=True)))[..., 0]


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def spelling_ids(backend, words: Sequence[str]) -> list[list[int]]:
    """For each word, the single-token ids of its spellings ("A", " A"); a word must have one."""
    ids = []
    for word in words:
        found = backend.single_token_ids([word, f" {word}"])
        if not found:
            raise ValueError(f"the model has no single token for {word!r}")
        ids.append(found)
    return ids
