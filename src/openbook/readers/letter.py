"""The letter reader: lettered options in the prompt; P(letter) of the answer's first token.

Permutation debiasing: `rotations` = k shows the options in k cyclic rotations (k=1 is the plain
order). The context and question are the shared prefix, evaluated once; the k option listings are
continuations scored together in one batch. Each option's probability is averaged over the
rotations in its original position, cancelling the model's preference for particular letters.
With k equal to the number of options, every option is shown once in every position, so the result
does not depend on which cyclic order the options came in.
"""

from __future__ import annotations

import numpy as np

from openbook.backends.base import Backend
from openbook.readers.base import SYSTEM_PROMPT, ReadPlan, logsumexp_rows, softmax, spelling_ids
from openbook.types import LETTERS, Question

INSTRUCTION = "Answer with the letter of the correct option only."


class LetterReader:
    def __init__(self, backend: Backend, rotations: int = 1):
        if not 1 <= rotations <= len(LETTERS):
            raise ValueError(f"rotations must be 1-{len(LETTERS)}, got {rotations}")
        self.backend = backend
        self.rotations = rotations
        self.name = "letter" if rotations == 1 else f"letter-rot{rotations}"
        self._tail = backend.template(SYSTEM_PROMPT).tail
        self._letter_ids = spelling_ids(backend, LETTERS)

    def orders(self, n_options: int) -> list[list[int]]:
        """Display slot j of rotation r shows option (j + r) mod n."""
        k = min(self.rotations, n_options)
        return [[(j + r) % n_options for j in range(n_options)] for r in range(k)]

    def plan(self, question: Question) -> ReadPlan:
        texts = list(question.options.values())
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
