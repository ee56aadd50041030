"""The yes/no reader: for each option, "is this answer correct?"; P(yes) against P(no).

Context and question form the shared prefix, evaluated once per question; each option is a short
continuation, all scored in one batch. An option's score is log P(yes) - log P(no) (spellings
pooled); a softmax across options normalises them into probabilities.
"""

from __future__ import annotations

import numpy as np

from openbook.backends.base import Backend
from openbook.errors import OpenbookError
from openbook.readers.base import ReadPlan, logsumexp_rows, softmax, user_text_then_tail
from openbook.records import Question

CHECK = "Is the proposed answer correct? Answer yes or no."
LOG_ODDS_LIMIT = 700.0  # an impossible yes (or no) is this sure, not infinitely: exp() stays finite


class YesNoReader:
    name = "yesno"

    def __init__(self, backend: Backend):
        self.backend = backend
        self.yes_ids = backend.single_token_ids(["Yes", " Yes", "yes", " yes", "YES"])
        self.no_ids = backend.single_token_ids(["No", " No", "no", " no", "NO"])
        if not self.yes_ids or not self.no_ids:
            raise OpenbookError(
                f"{backend.model_id}: the model has no single token for yes/no; the yes/no reader needs one"
            )

    def plan(self, question: Question) -> ReadPlan:
        continuations = [
            user_text_then_tail(self.backend, f"Proposed answer: {text}\n{CHECK}") for text in question.options.values()
        ]
        return ReadPlan(continuations, self.yes_ids + self.no_ids)

    def interpret(self, question: Question, logprobs: np.ndarray) -> dict[str, float]:
        yes = logsumexp_rows(logprobs[:, : len(self.yes_ids)])
        no = logsumexp_rows(logprobs[:, len(self.yes_ids) :])
        with np.errstate(invalid="ignore"):  # both -inf: no evidence either way, log-odds 0
            log_odds = np.nan_to_num(
                np.asarray(yes - no, dtype=np.float64), nan=0.0, posinf=LOG_ODDS_LIMIT, neginf=-LOG_ODDS_LIMIT
            )
        probabilities = softmax(log_odds)
        return {letter: float(p) for letter, p in zip(question.letters, probabilities)}

    def order_reading(self, question: Question, logprobs: np.ndarray) -> None:
        """Yes/no reads each option alone: there is no option order to keep."""
        return None
