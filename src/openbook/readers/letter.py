"""The letter reader: lettered options in the prompt; P(letter) of the answer's first token.

Permutation debiasing: `rotations` = k shows the options in k cyclic rotations (k=1 is the plain
order). The context and question are the shared prefix, evaluated once; the k option listings are
continuations scored together in one batch. Each option's probability is averaged over the
rotations in its original position, cancelling the model's preference for particular letters.
With k equal to the number of options, every option is shown once in every position, so the result
does not depend on which cyclic order the options came in. `first_rotation` skips the first orders,
so that a reading over few orders can be completed later (`complete_rotations`) without reading them
twice.
"""

from __future__ import annotations

import numpy as np

from openbook.backends.base import Backend
from openbook.readers.base import SYSTEM_PROMPT, ReaderOutput, ReadPlan, logsumexp_rows, softmax, spelling_ids
from openbook.types import LETTERS, Question

INSTRUCTION = "Answer with the letter of the correct option only."


class LetterReader:
    def __init__(self, backend: Backend, rotations: int = 1, first_rotation: int = 0):
        if not 1 <= rotations <= len(LETTERS):
            raise ValueError(f"rotations must be 1-{len(LETTERS)}, got {rotations}")
        if not 0 <= first_rotation < rotations:
            raise ValueError(f"first_rotation must be 0-{rotations - 1}, got {first_rotation}")
        self.backend = backend
        self.rotations = rotations
        self.first_rotation = first_rotation
        self.name = rotation_reader_name(rotations) + (f"-from{first_rotation}" if first_rotation else "")
        self._tail = backend.template(SYSTEM_PROMPT).tail
        self._letter_ids = spelling_ids(backend, LETTERS)

    def orders(self, n_options: int) -> list[list[int]]:
        """Display slot j of rotation r shows option (j + r) mod n."""
        k = min(self.rotations, n_options)
        return [[(j + r) % n_options for j in range(n_options)] for r in range(self.first_rotation, k)]

    def plan(self, question: Question) -> ReadPlan:
        texts = list(question.options.values())
        if not self.orders(len(texts)):
            raise ValueError(f"question {question.id!r} has {len(texts)} options: no order left after the "
                             f"first {self.first_rotation}")
        continuations = []
        for order in self.orders(len(texts)):
            listing = "\n".join(f"{LETTERS[slot]}. {texts[option]}" for slot, option in enumerate(order))
            continuations.append(self.backend.tokenize(f"{listing}\n{INSTRUCTION}{self._tail}", at_start=False))
        targets = [i for ids in self._letter_ids[:len(texts)] for i in ids]
        return ReadPlan(continuations, targets)

    def interpret(self, question: Question, logprobs: np.ndarray) -> dict[str, float]:
        n = len(question.options)
        orders = self.orders(n)
        probabilities = np.zeros(n)
        for order, row in zip(orders, logprobs):
            per_slot, start = [], 0
            for ids in self._letter_ids[:n]:
                per_slot.append(logsumexp_rows(row[start:start + len(ids)]))
                start += len(ids)
            slot_probabilities = softmax(np.array(per_slot))
            for slot, option in enumerate(order):
                probabilities[option] += slot_probabilities[slot] / len(orders)
        return {letter: float(p) for letter, p in zip(question.letters, probabilities)}


def rotation_reader_name(rotations: int) -> str:
    return "letter" if rotations == 1 else f"letter-rot{rotations}"


def orders_read(rotations: int, first_rotation: int, n_options: int) -> int:
    """How many option orders a letter reader shows a question of `n_options` options."""
    return max(0, min(rotations, n_options) - first_rotation)


def complete_rotations(read: ReaderOutput, read_rotations: int, rest: ReaderOutput, rotations: int,
                       n_options: int) -> ReaderOutput:
    """The `rotations`-order reading of a question from a reading over its first `read_rotations`
    orders and one over the rest (`first_rotation=read_rotations`): each option's probability is
    the mean over all orders, so the result equals reading every order at once."""
    done = orders_read(read_rotations, 0, n_options)
    more = orders_read(rotations, read_rotations, n_options)
    merged = {letter: (done * read.probabilities[letter] + more * rest.probabilities[letter]) / (done + more)
              for letter in read.probabilities}
    return ReaderOutput(read.question_id, rotation_reader_name(rotations), merged, read.evidence + rest.evidence,
                        read.prompt_tokens + rest.prompt_tokens)
