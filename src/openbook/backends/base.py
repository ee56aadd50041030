"""What a reader needs from a language model: tokens, a chat template, and next-token log-probs
after a shared prefix followed by several continuations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    def tokenize(self, text: str, at_start: bool, special: bool = True) -> list[int]:
        """Tokens of `text`; `at_start` adds the model's BOS where it wants one. With `special`,
        special tokens written in the text (template markers) are parsed as such; user text
        (passages, questions, options) takes `special=False`, so a "<|im_end|>" in it stays text."""
        ...

    def template(self, system: str | None) -> PromptTemplate: ...

    def single_token_ids(self, texts: Sequence[str]) -> list[int]:
        """The ids of the texts that are exactly one token (e.g. "A", " A", "Yes"), others skipped."""
        ...

    def next_token_logprobs(
        self,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        targets: Sequence[int],
        share_prefix: bool = True,
    ) -> np.ndarray:
        """Log-probabilities (over the whole vocabulary) of each target token right after
        `prefix + continuation`, shape (len(continuations), len(targets)).

        With `share_prefix` the prefix is evaluated once and its KV cache serves every continuation;
        without, each continuation is evaluated from scratch (the reference)."""
        ...


def model_path_of(backend: Backend) -> str:
    """The model a backend reads with: the file it was loaded from where it says so, else its id."""
    return str(getattr(backend, "model_path", backend.model_id))


def model_token_counter(backend: Backend) -> Callable[[str], int]:
    """How many of the model's tokens a text takes mid-prompt: the unit context budgets are counted in."""
    return lambda text: len(backend.tokenize(text, at_start=False, special=False))


def log_softmax_at(logits: np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
    """Log-softmax over the vocabulary (last axis, in float64) of `logits`, taken at `targets`."""
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return (shifted - log_norm)[..., np.asarray(targets, dtype=np.int64)].astype(np.float32)


def device_and_dtype(device: str | None, dtype: str | None):
    """CUDA when there is one, else the CPU; bfloat16 on CUDA, float32 on the CPU, unless named."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return device, getattr(torch, dtype) if dtype else (torch.bfloat16 if device == "cuda" else torch.float32)
