"""The encoder multiple-choice reader (the DeBERTa reader of the winning teams).

For each option the encoder reads the pair (context, question + option) and a head gives one score;
a softmax across the question's options gives the probabilities. The model is a transformers
`AutoModelForMultipleChoice`: a folder trained by `openbook train encoder`, any Hugging Face encoder
(DeBERTa-v3 …) by path or hub id, or a shipped embedder's encoder (all-MiniLM-L6-v2, all-mpnet-base-v2,
whose multiple-choice head starts untrained, so train it first).

Truncation never cuts the option: the context is cut first (its end), then the question (its
start, keeping the words that lead to the option); an option longer than the whole budget keeps its
first tokens only then.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from openbook.readers.base import softmax
from openbook.records import Context, Question, ReaderOutput

DEFAULT_MAX_TOKENS = 384


def option_pairs(tokenizer, question: Question, context: Context, max_tokens: int) -> tuple[list[str], list[str]]:
    """The (first, second) segments the encoder reads for each present option, in letter order:
    (context, question + option), the second already within `max_tokens` with the option whole (as
    much of the question as fits, its end); the context is cut to the rest when tokenised."""
    room = max_tokens - tokenizer.num_special_tokens_to_add(pair=True) - 1  # the context keeps a token at least
    first = context.text or question.prompt
    prompt = _offsets(tokenizer, question.prompt)  # once per question, not per option
    seconds = []
    for text in question.options.values():
        spans = _offsets(tokenizer, text)
        option = _head(text, spans, room)
        keep = room - min(len(spans), room)
        second = f"{_tail(question.prompt, prompt, keep)} {option}".strip()
        while _count(tokenizer, second) > room and keep > 0:  # a word split differently once joined
            keep -= 1
            second = f"{_tail(question.prompt, prompt, keep)} {option}".strip()
        seconds.append(second)
    return [first] * len(seconds), seconds


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _offsets(tokenizer, text: str) -> list[tuple[int, int]]:
    """Each token's (start, end) in `text`."""
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def _head(text: str, offsets: list[tuple[int, int]], keep: int) -> str:
    """The start of `text` that takes at most `keep` of its tokens (`offsets`)."""
    if len(offsets) <= keep:
        return text
    return text[: offsets[keep - 1][1]] if keep > 0 else ""


def _tail(text: str, offsets: list[tuple[int, int]], keep: int) -> str:
    """The end of `text` that takes at most `keep` of its tokens (`offsets`)."""
    if len(offsets) <= keep:
        return text
    return text[offsets[len(offsets) - keep][0] :] if keep > 0 else ""


def encode_options(
    tokenizer, questions: Sequence[Question], contexts: Sequence[Context], max_tokens: int
) -> tuple[dict, list[int]]:
    """Tokenised (questions × options × tokens) tensors and each question's option count. Questions
    with fewer options are padded with copies of their last option; mask those by the counts."""
    firsts, seconds, sizes = [], [], []
    for question, context in zip(questions, contexts):
        first, second = option_pairs(tokenizer, question, context, max_tokens)
        firsts.append(first)
        seconds.append(second)
        sizes.append(len(first))
    width = max(sizes)
    flat_first = [f[min(j, len(f) - 1)] for f in firsts for j in range(width)]
    flat_second = [s[min(j, len(s) - 1)] for s in seconds for j in range(width)]
    features = tokenizer(
        flat_first, flat_second, truncation="only_first", max_length=max_tokens, padding=True, return_tensors="pt"
    )
    return {key: value.view(len(sizes), width, -1) for key, value in features.items()}, sizes


def load_multiple_choice(model: str, local_files_only: bool = True):
    """(model, tokenizer) of a multiple-choice encoder; registered embedder names resolve to their folder."""
    from openbook.errors import require_modules
    from openbook.models import local_model_location

    require_modules("train", "torch", "transformers")
    from transformers import AutoModelForMultipleChoice, AutoTokenizer, logging

    location = local_model_location(model)
    logging.set_verbosity_error()  # an untrained head is reported by `train encoder`, not on every load
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_files_only)
    network = AutoModelForMultipleChoice.from_pretrained(location, local_files_only=local_files_only)
    return network, tokenizer


class EncoderReader:
    """Scores a question's options with a multiple-choice encoder; needs no language-model backend."""

    def __init__(
        self,
        model: str | Path,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        device: str | None = None,
        threads: int | None = None,
    ):
        network, tokenizer = load_multiple_choice(str(model))  # first: names the extra if torch is missing
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.model_id = str(model)
        self.name = "encoder"
        self.names: tuple[str, ...] = (self.name,)
        self.max_tokens = max_tokens
        self.network, self.tokenizer = network, tokenizer
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.network.to(self.device).eval()
        self.model_seconds = 0.0
        self._threads = threads

    def __reduce__(self) -> tuple[object, tuple[str, int, int | None]]:
        """Sent to another process (a reading pool's actor) as what it is loaded from: loaded there
        once, its weights never pickled."""
        return shared_encoder_reader, (self.model_id, self.max_tokens, self._threads)

    @property
    def model_path(self) -> str:
        return self.model_id

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def tokens(self, question: Question, context: Context) -> int:
        """Tokens of its input for the question: each option paired with the context, padded alike."""
        features, _ = encode_options(self.tokenizer, [question], [context], self.max_tokens)
        return int(features["input_ids"].numel())

    def scores(self, questions: Sequence[Question], contexts: Sequence[Context]) -> list[np.ndarray]:
        """Raw option scores per question (one forward pass for the batch)."""
        import torch

        started = time.perf_counter()
        features, sizes = encode_options(self.tokenizer, questions, contexts, self.max_tokens)
        with torch.inference_mode():
            logits = self.network(**{k: v.to(self.device) for k, v in features.items()}).logits.float().cpu().numpy()
        self.model_seconds += time.perf_counter() - started
        return [row[:size] for row, size in zip(logits, sizes)]

    def read(self, questions: Sequence[Question], contexts: Sequence[Context]) -> list[list[ReaderOutput]]:
        """One output per question, each question scored alone (no padding across questions)."""
        return [
            [ReaderOutput(question.id, self.name, self.probabilities(question, context), evidence=context.passage_ids)]
            for question, context in zip(questions, contexts)
        ]

    def probabilities(self, question: Question, context: Context) -> dict[str, float]:
        probabilities = softmax(self.scores([question], [context])[0])
        return {letter: float(p) for letter, p in zip(question.letters, probabilities)}


@functools.lru_cache(maxsize=2)
def shared_encoder_reader(model: str, max_tokens: int, threads: int | None) -> EncoderReader:
    """The encoder reader of a process that reads for others (a pool's actor), loaded once."""
    return EncoderReader(model, max_tokens=max_tokens, threads=threads)
