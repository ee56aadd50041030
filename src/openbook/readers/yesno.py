"""The yes/no reader: for each option, "is this answer correct?"; P(yes) against P(no).

Context and question form the shared prefix, evaluated once per question; each option is a short
continuation, all scored in one batch. An option's score is log P(yes) - log P(no) (spellings
pooled); a softmax across options normalises them into probabilities.
"""

from __future__ import annotations

import numpy as np

from openbook.backends.base import Backend
from openbook.readers.base import SYSTEM_PROMPT, ReaderOutput, logsumexp_rows, question_block, softmax
from openbook.retrieve.context import Context
from openbook.types import Question

CHECK = "Is the proposed answer correct? Answer yes or no."


class YesNoReader:
    name = "yesno"

    def __init__(self, backend: Backend, share_prefix: bool = True):
        self.backend = backend
        self.share_prefix = share_prefix
        self._template = backend.template(SYSTEM_PROMPT)
        self._yes = backend.single_token_ids(["Yes", " Yes", "yes", " yes", "YES"])
        self._no = backend.single_token_ids(["No", " No", "no", " no", "NO"])
        if not self._yes or not self._no:
            raise ValueError("the model has no single token for yes/no")

    def read(self, question: Question, context: Context) -> ReaderOutput:
        letters = question.letters
        prefix = self.backend.tokenize(self._template.head + question_block(question, context), at_start=True)
        continuations = [
            self.backend.tokenize(f"Proposed answer: {question.options[letter]}\n{CHECK}{self._template.tail}",
                                  at_start=False)
            for letter in letters
        ]
        logprobs = self.backend.next_token_logprobs(prefix, continuations, self._yes + self._no, self.share_prefix)
        yes = logsumexp_rows(logprobs[:, :len(self._yes)])
        no = logsumexp_rows(logprobs[:, len(self._yes):])
        probabilities = softmax(np.asarray(yes - no, dtype=np.float64))
        return ReaderOutput(
            question_id=question.id, reader=self.name,
            probabilities={letter: float(p) for letter, p in zip(letters, probabilities)},
            evidence=context.passage_ids,
            prompt_tokens=len(prefix) + sum(len(c) for c in continuations),
        )
