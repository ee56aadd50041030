"""What readers share: the `Reader` protocol every reader kind speaks, the `PromptReader` protocol of
language-model prompts, the prompt's shared prefix, and the arithmetic of option orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from openbook.backends.base import Backend
from openbook.errors import OpenbookError
from openbook.records import Context, OrderReading, Question, ReaderOutput

SYSTEM_PROMPT = "You are an expert in science. You answer multiple-choice questions accurately."


SlotPrior = dict[int, np.ndarray]  # number of options -> log preference of each display slot (mean 0)


def rotation(n_options: int, r: int) -> list[int]:
    """The options display slots 0..n-1 show in cyclic rotation r."""
    return [(slot + r) % n_options for slot in range(n_options)]


def option_probabilities(
    letters: Sequence[str], reading: OrderReading, prior: SlotPrior | None = None
) -> dict[str, float]:
    """Each option's probability, averaged over the orders read in its position there; each order's
    slot probabilities divided by the slot prior first, where one is given for this many options."""
    n = len(letters)
    scores = np.array(reading.logprobs)
    if prior is not None and n in prior:
        scores = scores - prior[n]
    probabilities = np.zeros(n)
    for r, slot_probabilities in enumerate(softmax(scores), start=reading.first_order):
        probabilities[rotation(n, r)] += slot_probabilities / len(scores)
    return {letter: float(p) for letter, p in zip(letters, probabilities)}


@dataclass(frozen=True, slots=True)
class ReadPlan:
    continuations: list[list[int]]  # token ids that follow the shared prefix
    targets: list[int]  # token ids whose next-token log-probabilities are needed


class Reader(Protocol):
    """What the answer path reads a stage with: every reader kind speaks this, whatever model it runs.
    One reader may give several outputs per question (`names`): the prompt readers of one language
    model are read together, served by one evaluation of each question's shared prefix."""

    names: tuple[str, ...]  # its outputs' reader names, in the order `read` gives them

    def read(self, questions: Sequence[Question], contexts: Sequence[Context]) -> list[list[ReaderOutput]]:
        """Per question, one output per name, each question read with its context."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this reader's model: the unit its context budget is counted in."""
        ...

    def tokens(self, question: Question, context: Context) -> int:
        """Tokens its model evaluates reading `question` with `context`: what a reading is costed in
        before it runs."""
        ...

    @property
    def model_seconds(self) -> float:
        """Time its model has spent evaluating so far."""
        ...

    @property
    def model_path(self) -> str:
        """The model it reads with: a file or folder, or the name it was given."""
        ...


class PromptReader(Protocol):
    """A language-model prompt over a question's options: it plans the continuations it needs after
    the shared prefix (context + question) and the target tokens whose log-probabilities it wants,
    then interprets the resulting matrix. It never calls the model itself (`PromptReaders` does)."""

    name: str

    def plan(self, question: Question) -> ReadPlan: ...

    def interpret(self, question: Question, logprobs: np.ndarray) -> dict[str, float]:
        """`logprobs[i, j]`: log P(target j | prefix + continuation i), in the plan's order."""
        ...

    def order_reading(self, question: Question, logprobs: np.ndarray) -> OrderReading | None:
        """The per-order reading behind `interpret` (letter readers), else None."""
        ...


def question_block(question: Question, context: Context) -> str:
    """The text every option shares: passages, then the question."""
    if context.text:
        return (
            f"Use the Wikipedia passages below to answer the multiple-choice question.\n\n"
            f"Passages:\n{context.text}\n\nQuestion: {question.prompt}\n"
        )
    return f"Answer the multiple-choice question.\n\nQuestion: {question.prompt}\n"


def shared_prefix(backend: Backend, question: Question, context: Context) -> list[int]:
    return backend.tokenize(backend.template(SYSTEM_PROMPT).head, at_start=True) + backend.tokenize(
        question_block(question, context), at_start=False, special=False
    )


def user_text_then_tail(backend: Backend, text: str) -> list[int]:
    """A continuation: the user's text (options: never parsed for special tokens), then the chat
    template's end of turn and the assistant's cue."""
    return backend.tokenize(text, at_start=False, special=False) + backend.tokenize(
        backend.template(SYSTEM_PROMPT).tail, at_start=False
    )


def logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """log(sum(exp(v))) over the last axis: several spellings of one answer (" A", "A") pooled. A row
    of -inf only (every spelling impossible) is -inf, not NaN."""
    top = values.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # log(0) is the -inf wanted
        return (top + np.log(np.exp(values - top).sum(axis=-1, keepdims=True)))[..., 0]


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def spelling_ids(backend: Backend, words: Sequence[str]) -> list[list[int]]:
    """For each word, the single-token ids of its spellings ("A", " A"); a word must have one."""
    ids = []
    for word in words:
        found = backend.single_token_ids([word, f" {word}"])
        if not found:
            raise OpenbookError(f"{backend.model_id}: the model has no single token for {word!r}")
        ids.append(found)
    return ids
