"""A language-model backend that answers from a script, for testing the answer path's logic (plans,
cascade, budget, resume, letter prior) in milliseconds without a model.

It speaks `openbook.backends.Backend` for real: words are its tokens, so it can read back each prompt
the readers build. A letter prompt's letters get log-probabilities from the script: each displayed
option's score (`score(prompt, option, with_context)`) plus the display slot's bias (a letter
preference, which option-order debiasing and the letter prior are there to remove). A yes/no prompt's
"Yes" gets the option's score as log-odds. Every token evaluated costs `seconds_per_token` on the
backend's `clock`, a `FakeClock` the run's budget can be measured with.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from openbook.backends import PromptTemplate
from openbook.records import LETTERS

Score = Callable[[str, str, bool], float]  # (question prompt, option text, read with context) -> score
_TOKEN = re.compile(r"\n|[^\s]+")
_LISTING = re.compile(r"^([A-E])\. (.*)$")


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ScriptedBackend:
    score: Score
    slot_bias: Sequence[float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    seconds_per_token: float = 0.0
    clock: FakeClock = field(default_factory=FakeClock)
    sleep_per_call: float = 0.0  # real seconds each evaluation takes (a service under load)
    # (question prompt, with context) -> fail there, as a too-long prompt would
    fail_on: Callable[[str, bool], bool] | None = None
    name: str = "scripted"
    model_id: str = "scripted"
    model_path: str = "scripted.gguf"
    model_seconds: float = 0.0
    calls: int = 0  # prefix evaluations
    _ids: dict[str, int] = field(default_factory=dict)
    _words: list[str] = field(default_factory=list)

    def _id(self, word: str) -> int:
        if word not in self._ids:
            self._ids[word] = len(self._words)
            self._words.append(word)
        return self._ids[word]

    def tokenize(self, text: str, at_start: bool, special: bool = True) -> list[int]:
        return [self._id(word) for word in _TOKEN.findall(text)]

    def template(self, system: str | None) -> PromptTemplate:
        return PromptTemplate(head=f"<system> {system} </system> <user>\n", tail="\n</user> <assistant>")

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        ids = [self.tokenize(text, at_start=False) for text in texts]
        return list(dict.fromkeys(found[0] for found in ids if len(found) == 1))

    def next_token_logprobs(
        self,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        targets: Sequence[int],
        share_prefix: bool = True,
    ) -> np.ndarray:
        self.calls += 1
        if self.sleep_per_call:
            time.sleep(self.sleep_per_call)
        evaluated = (
            len(prefix) + sum(len(c) for c in continuations)
            if share_prefix
            else sum(len(prefix) + len(c) for c in continuations)
        )
        self.model_seconds += evaluated * self.seconds_per_token
        self.clock.advance(evaluated * self.seconds_per_token)
        head = self._text(prefix)
        prompt = head.split("Question: ", 1)[1].split("\n", 1)[0].strip()
        with_context = "Passages:" in head
        if self.fail_on is not None and self.fail_on(prompt, with_context):
            raise RuntimeError(f"scripted failure on {prompt!r}")
        return np.array([self._row(prompt, self._text(c), with_context, targets) for c in continuations])

    def _text(self, ids: Sequence[int]) -> str:
        return " ".join(self._words[i] for i in ids).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")

    def _row(self, prompt: str, continuation: str, with_context: bool, targets: Sequence[int]) -> list[float]:
        row = [-math.inf] * len(targets)
        if continuation.startswith("Proposed answer:"):
            option = continuation.removeprefix("Proposed answer:").split("\n", 1)[0].strip()
            log_odds = self.score(prompt, option, with_context)
            yes, no = -math.log1p(math.exp(-log_odds)), -math.log1p(math.exp(log_odds))
            for column, target in enumerate(targets):
                if self._words[target] == "Yes":
                    row[column] = yes
                elif self._words[target] == "No":
                    row[column] = no
            return row
        shown = [match.groups() for line in continuation.split("\n") if (match := _LISTING.match(line.strip()))]
        for column, target in enumerate(targets):
            for letter, option in shown:
                if self._words[target] == letter:
                    row[column] = self.score(prompt, option, with_context) + self.slot_bias[LETTERS.index(letter)]
        return row
