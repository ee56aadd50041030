"""Prompt readers of one language model, read together: one evaluation of each question's shared prefix
serves every one of them.

A prompt reader never calls the model itself. It *plans* the continuations it needs after the shared
prefix (context + question) and the target tokens whose log-probabilities it wants, then
*interprets* the resulting matrix. `read_questions` merges the plans of all readers (identical
continuations, e.g. the first rotation of several letter readers, are evaluated once), makes one
backend call, and hands each reader its rows and columns. An ensemble of prompt readers therefore
costs one prefix evaluation per question, not one per reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openbook.backends.base import Backend, model_path_of, model_token_counter
from openbook.readers.base import PromptReader, ReadPlan, option_probabilities, shared_prefix
from openbook.records import Context, Question, ReaderOutput


@dataclass(frozen=True)
class QuestionPlan:
    """All readers' plans for one question, merged: identical continuations and targets once."""

    prefix: list[int]
    continuations: list[list[int]]
    targets: list[int]
    plans: list[ReadPlan]
    row_of: dict[tuple[int, ...], int]
    column_of: dict[int, int]


def plan_question(
    readers: Sequence[PromptReader], backend: Backend, question: Question, context: Context
) -> QuestionPlan:
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
    readers: Sequence[PromptReader], merged: QuestionPlan, logprobs: np.ndarray, question: Question, context: Context
) -> list[ReaderOutput]:
    outputs = []
    for reader, plan in zip(readers, merged.plans):
        rows = [merged.row_of[tuple(c)] for c in plan.continuations]
        columns = [merged.column_of[t] for t in plan.targets]
        own = logprobs[np.ix_(rows, columns)]
        orders = reader.order_reading(question, own)  # letter readers keep their per-order reading
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


def read_questions(
    readers: Sequence[PromptReader],
    backend: Backend,
    questions: Sequence[Question],
    contexts: Sequence[Context],
    share_prefix: bool = True,
) -> list[list[ReaderOutput]]:
    """Every reader on every question, one backend call for all of them where the backend batches
    across questions (`score_many`), else one call per question."""
    merged = [plan_question(readers, backend, q, c) for q, c in zip(questions, contexts)]
    requests = [(m.prefix, m.continuations, m.targets) for m in merged]
    score_many = getattr(backend, "score_many", None)  # an optional capability of a backend, not a reader kind
    if score_many is not None:
        matrices = score_many(requests, share_prefix)
    else:
        matrices = [backend.next_token_logprobs(p, c, t, share_prefix) for p, c, t in requests]
    return [
        interpret_question(readers, m, logprobs, q, c)
        for m, logprobs, q, c in zip(merged, matrices, questions, contexts)
    ]


def read_question(
    readers: Sequence[PromptReader], backend: Backend, question: Question, context: Context, share_prefix: bool = True
) -> list[ReaderOutput]:
    return read_questions(readers, backend, [question], [context], share_prefix)[0]


class PromptReaders:
    """The prompt readers of one backend as one `Reader`: one shared-prefix evaluation per question."""

    def __init__(self, backend: Backend, readers: Sequence[PromptReader], share_prefix: bool = True):
        if not readers:
            raise ValueError("PromptReaders needs at least one prompt reader")
        self.backend = backend
        self.readers = tuple(readers)
        self.share_prefix = share_prefix
        self.names = tuple(reader.name for reader in self.readers)
        self._count = model_token_counter(backend)

    def read(self, questions: Sequence[Question], contexts: Sequence[Context]) -> list[list[ReaderOutput]]:
        return read_questions(self.readers, self.backend, questions, contexts, self.share_prefix)

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def tokens(self, question: Question, context: Context) -> int:
        merged = plan_question(self.readers, self.backend, question, context)
        continued = sum(len(c) for c in merged.continuations)
        if self.share_prefix:
            return len(merged.prefix) + continued
        return len(merged.prefix) * len(merged.continuations) + continued

    @property
    def model_seconds(self) -> float:
        return self.backend.model_seconds

    @property
    def model_path(self) -> str:
        return model_path_of(self.backend)
