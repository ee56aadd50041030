"""What a reader needs from a language model: tokens, a chat template, and next-token log-probs
after a shared prefix followed by several continuations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """A chat template split around the user's message: `head + user text + tail` is the prompt,
    ending where the assistant's first token is predicted."""

    head: str
    tail: str


class Backend(Protocol):
    name: str
    model_id: str
    model_seconds: float  # cumulative time spent evaluating the model

    def tokenize(self, text: str, at_start: bool) -> list[int]:
        """Tokens of `text`; `at_start` adds the model's BOS where it wants one. Special tokens
        written in the text (template markers) are parsed as such."""
        ...

    def template(self, system: str | None) -> PromptTemplate: ...

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        """The ids of the texts that are exactly one token (e.g. "A", " A", "Yes"), others skipped."""
        ...

    def next_token_logprobs(self, prefix: Sequence[int], continuations: Sequence[Sequence[int]],
                            targets: Sequence[int], share_prefix: bool = True) -> np.ndarray:
        """Log-probabilities (over the whole vocabulary) of each target token right after
        `prefix + continuation`, shape (len(continuations), len(targets)).

        With `share_prefix` the prefix is evaluated once and its KV cache serves every continuation;
        without, each continuation is evaluated from scratch (the reference)."""
        ...
