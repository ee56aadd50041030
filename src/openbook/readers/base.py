"""What readers share: the prompt prefix, the plan/interpret protocol, and `read_question`, which
serves every reader of a question from one evaluation of the shared prefix.

A reader never calls the model itself. It *plans* the continuations it needs after the shared
prefix (context + question) and the target tokens whose log-probabilities it wants, then
*interprets* the resulting matrix. `read_question` merges the plans of all readers (identical
continuations, e.g. the first rotation of several letter readers, are evaluated once), makes one
backend call, and hands each reader its rows and columns. An ensemble of readers therefore costs one
prefix evaluation per question, not one per reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from openbook.backends.base import Backend
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
    name: str

    def plan(self, question: Question) -> ReadPlan: ...

    def interpret(self, question: Question, logprobs: np.ndarray) -> dict[str, float]:
        """`logprobs[i, j]`: log P(target j | prefix + continuation i), in the plan's order."""
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


@dataclass
class QuestionPlan:
    """All readers' plans for one question, merged: identical continuations and targets once."""

    prefix: list[int]
    continuations: list[list[int]]
    targets: list[int]
    plans: list[ReadPlan]
    row_of: dict[tuple[int, ...], int]
    column_of: dict[int, int]


def plan_question(readers: Sequence[Reader], backend: Backend, question: Question, context: Context) -> QuestionPlan:
    prefix = shared_prefix(backend, question, context)
    plans = [reader.plan(question) for reader in readers]
    row_of: dict[tuple[int, ...], int] = {}
    column_of: dict[int, int] = {}
    for plan in plans:
        for continuation in plan.continuations:
            row_of.setdefault(tuple(continuation), len(row_of))
        for target in plan.targets:
            column_of.setdefault(target, len(column_of))
    return QuestionPlan(prefix, [list(c) for c in row_of], list(column_of), plans, row_of, column_of)


def interpret_question(
    readers: Sequence[Reader], merged: QuestionPlan, logprobs: np.ndarray, question: Question, context: Context
) -> list[ReaderOutput]:
    outputs = []
    for reader, plan in zip(readers, merged.plans):
        rows = [merged.row_of[tuple(c)] for c in plan.continuations]
        columns = [merged.column_of[t] for t in plan.targets]
        own = logprobs[np.ix_(rows, columns)]
        read_orders = getattr(reader, "read_orders", None)  # letter readers keep their per-order reading
        orders = read_orders(question, own) if read_orders is not None else None
        probabilities = (
            option_probabilities(question.letters, orders) if orders is not None else reader.interpret(question, own)
        )
        outputs.append(
            ReaderOutput(
                question_id=question.id,
                reader=reader.name,
                probabilities=probabilities,
                evidence=context.passage_ids,
                prompt_tokens=len(merged.prefix) + sum(len(c) for c in plan.continuations),
                orders=orders,
            )
        )
    return outputs


def read_question(
    readers: Sequence[Reader], backend: Backend, question: Question, context: Context, share_prefix: bool = True
) -> list[ReaderOutput]:
    return read_questions(readers, backend, [question], [context], share_prefix)[0]


def read_questions(
    readers: Sequence[Reader],
    backend: Backend,
    questions: Sequence[Question],
    contexts: Sequence[Context],
    share_prefix: bool = True,
) -> list[list[ReaderOutput]]:
    """Every reader on every question, one backend call for all of them where the backend batches
    across questions (`score_many`), else one call per question."""
    merged = [plan_question(readers, backend, q, c) for q, c in zip(questions, contexts)]
    requests = [(m.prefix, m.continuations, m.targets) for m in merged]
    score_many = getattr(backend, "score_many", None)
    if score_many is not None:
        matrices = score_many(requests, share_prefix)
    else:
        matrices = [backend.next_token_logprobs(p, c, t, share_prefix) for p, c, t in requests]
    return [
        interpret_question(readers, m, logprobs, q, c)
        for m, logprobs, q, c in zip(merged, matrices, questions, contexts)
    ]


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
            raise ValueError(f"the model has no single token for {word!r}")
        ids.append(found)
    return ids
