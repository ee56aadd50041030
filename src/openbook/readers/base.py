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
from openbook.retrieve.context import Context
from openbook.types import Question

SYSTEM_PROMPT = "You are an expert in science. You answer multiple-choice questions accurately."


@dataclass(frozen=True, slots=True)
class ReaderOutput:
    question_id: str
    reader: str
    probabilities: dict[str, float]  # original option letter -> probability; sums to 1
    evidence: tuple[str, ...] = ()   # passage ids the reader was given
    prompt_tokens: int = 0           # shared prefix + this reader's continuations


@dataclass(frozen=True, slots=True)
class ReadPlan:
    continuations: list[list[int]]  # token ids that follow the shared prefix
    targets: list[int]              # token ids whose next-token log-probabilities are needed


class Reader(Protocol):
    name: str

    def plan(self, question: Question) -> ReadPlan: ...

    def interpret(self, question: Question, logprobs: np.ndarray) -> dict[str, float]:
        """`logprobs[i, j]`: log P(target j | prefix + continuation i), in the plan's order."""
        ...


def question_block(question: Question, context: Context) -> str:
    """The text every option shares: passages, then the question."""
    if context.text:
        return (f"Use the Wikipedia passages below to answer the multiple-choice question.\n\n"
                f"Passages:\n{context.text}\n\nQuestion: {question.prompt}\n")
    return f"Answer the multiple-choice question.\n\nQuestion: {question.prompt}\n"


def shared_prefix(backend: Backend, question: Question, context: Context) -> list[int]:
    return backend.tokenize(backend.template(SYSTEM_PROMPT).head + question_block(question, context), at_start=True)


def read_question(readers: Sequence[Reader], backend: Backend, question: Question, context: Context,
                  share_prefix: bool = True) -> list[ReaderOutput]:
    prefix = shared_prefix(backend, question, context)
    plans = [reader.plan(question) for reader in readers]
    row_of: dict[tuple[int, ...], int] = {}
    column_of: dict[int, int] = {}
    for plan in plans:
        for continuation in plan.continuations:
            row_of.setdefault(tuple(continuation), len(row_of))
        for target in plan.targets:
            column_of.setdefault(target, len(column_of))
    logprobs = backend.next_token_logprobs(prefix, [list(c) for c in row_of], list(column_of), share_prefix)
    outputs = []
    for reader, plan in zip(readers, plans):
        rows = [row_of[tuple(c)] for c in plan.continuations]
        columns = [column_of[t] for t in plan.targets]
        probabilities = reader.interpret(question, logprobs[np.ix_(rows, columns)])
        outputs.append(ReaderOutput(
            question_id=question.id, reader=reader.name, probabilities=probabilities,
            evidence=context.passage_ids,
            prompt_tokens=len(prefix) + sum(len(c) for c in plan.continuations),
        ))
    return outputs


def logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """log(sum(exp(v))) over the last axis: several spellings of one answer (" A", "A") pooled."""
    top = values.max(axis=-1, keepdims=True)
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
