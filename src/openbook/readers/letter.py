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
from openbook.readers.base import SYSTEM_PROMPT, ReaderOutput, logsumexp_rows, question_block, softmax, spelling_ids
from openbook.retrieve.context import Context
from openbook.types import LETTERS, Question

INSTRUCTION = "Answer with the letter of the correct option only."


class LetterReader:
    def __init__(self, backend: Backend, rotations: int = 1, share_prefix: bool = True):
        if not 1 <= rotations <= len(LETTERS):
            raise ValueError(f"rotations must be 1-{len(LETTERS)}, got {rotations}")
        self.backend = backend
        self.rotations = rotations
        self.share_prefix = share_prefix
        self.name = "letter" if rotations == 1 else f"letter-rot{rotations}"
        self._template = backend.template(SYSTEM_PROMPT)
        self._letter_ids = spelling_ids(backend, LETTERS)

    def orders(self, n_options: int) -> list[list[int]]:
        """Display slot j of rotation r shows option (j + r) mod n."""
        k = min(self.rotations, n_options)
        return [[(j + r) % n_options for j in range(n_options)] for r in range(k)]

    def read(self, question: Question, context: Context) -> ReaderOutput:
        letters = question.letters
        texts = [question.options[letter] for letter in letters]
        n = len(letters)
        prefix = self.backend.tokenize(self._template.head + question_block(question, context), at_start=True)
        orders = self.orders(n)
        continuations = []
        for order in orders:
            listing = "\n".join(f"{LETTERS[slot]}. {texts[option]}" for slot, option in enumerate(order))
            continuations.append(self.backend.tokenize(f"{listing}\n{INSTRUCTION}{self._template.tail}",
                                                       at_start=False))
        flat_ids = [i for ids in self._letter_ids[:n] for i in ids]
        logprobs = self.backend.next_token_logprobs(prefix, continuations, flat_ids, self.share_prefix)
        probabilities = np.zeros(n)
        for order, row in zip(orders, logprobs):
            per_slot, start = [], 0
            for ids in self._letter_ids[:n]:
                per_slot.append(logsumexp_rows(row[start:start + len(ids)]))
                start += len(ids)
            slot_probabilities = softmax(np.array(per_slot))
            for slot, option in enumerate(order):
                probabilities[option] += slot_probabilities[slot] / len(orders)
        return ReaderOutput(
            question_id=question.id, reader=self.name,
            probabilities={letter: float(p) for letter, p in zip(letters, probabilities)},
            evidence=context.passage_ids,
            prompt_tokens=len(prefix) + sum(len(c) for c in continuations),
        )
