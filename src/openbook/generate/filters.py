"""What a draft question must pass, each rejection counted with its reason (as the corpus reader
counts its drops):

1. it parses, every field filled (`parse_draft`: "malformed", "empty field");
2. its options are distinct ("duplicate options") and not near-copies of each other
   ("near-duplicate options": the same words, reordered or nearly: rapidfuzz's token-sort ratio ≥ 97;
   a lower bar, or the token-set ratio, flags distractors that differ in one word, "maximum" against
   "minimum", which are what a good distractor is);
3. the question does not state its answer ("answer stated in the question");
4. it is not a near-copy of a question already kept ("near-duplicate question": MinHash of word
   3-grams, Jaccard ≥ 0.6, datasketch's LSH);
5. the shipped reader, without the passage and with the options shuffled, does not already pick the
   answer ("too easy": the answer leaks through the options or is common knowledge; a measured share
   of them is kept, `keep_easy`, so the set is not only hard questions);
6. the reader with the passage picks the answer the writer gave ("key disagrees with the reader": the
   question is unanswerable from its passage or its key is wrong).

The rule filters (1-4) cost microseconds and run first; the two readings (5, 6) cost a prompt each.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from openbook.backends import Backend
from openbook.readers import LetterReader, PromptReaders
from openbook.records import LETTERS, NO_CONTEXT, Context, Passage, Question

MALFORMED = "malformed"
EMPTY_FIELD = "empty field"
DUPLICATE_OPTIONS = "duplicate options"
NEAR_DUPLICATE_OPTIONS = "near-duplicate options"
ANSWER_IN_QUESTION = "answer stated in the question"
NEAR_DUPLICATE_QUESTION = "near-duplicate question"
TOO_EASY = "too easy"
KEY_DISAGREES = "key disagrees with the reader"
ACCEPTED = "accepted"
ACCEPTED_EASY = "accepted, too easy but kept"
REASONS = (
    MALFORMED,
    EMPTY_FIELD,
    DUPLICATE_OPTIONS,
    NEAR_DUPLICATE_OPTIONS,
    ANSWER_IN_QUESTION,
    NEAR_DUPLICATE_QUESTION,
    TOO_EASY,
    KEY_DISAGREES,
)

NEAR_DUPLICATE_RATIO = 97.0  # rapidfuzz token-sort ratio (0-100) between two options
QUESTION_SIMILARITY = 0.6  # Jaccard of word 3-grams between two questions
MIN_STATED_CHARACTERS = 4  # a shorter answer ("C", "yes") inside the question is not a leak


@dataclass(frozen=True)
class Draft:
    """A question as the writer gave it: prompt, options A-E and the right letter."""

    prompt: str
    options: dict[str, str]
    answer: str


def parse_draft(text: str) -> Draft | str:
    """The draft in the writer's reply, or the reason it is not one."""
    try:  # strict=False: llama.cpp's JSON grammar lets a string hold raw line breaks, which are only spacing
        reply = json.loads(text, strict=False)
    except json.JSONDecodeError:
        return MALFORMED
    if not isinstance(reply, dict) or any(not isinstance(reply.get(key), str) for key in ("question", *LETTERS)):
        return MALFORMED
    if reply.get("answer") not in LETTERS:
        return MALFORMED
    fields = {key: " ".join(reply[key].split()) for key in ("question", *LETTERS)}
    if not all(fields.values()):
        return EMPTY_FIELD
    return Draft(fields["question"], {letter: fields[letter] for letter in LETTERS}, reply["answer"])


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def rule_problem(draft: Draft) -> str | None:
    """The first of the rule filters (2-3) the draft fails, or None."""
    options = [_normal(text) for text in draft.options.values()]
    if len(set(options)) < len(options):
        return DUPLICATE_OPTIONS
    for i, first in enumerate(options):
        for second in options[i + 1 :]:
            if fuzz.token_sort_ratio(first, second) >= NEAR_DUPLICATE_RATIO:
                return NEAR_DUPLICATE_OPTIONS
    answer = _normal(draft.options[draft.answer])
    if len(answer) >= MIN_STATED_CHARACTERS and re.search(rf"\b{re.escape(answer)}\b", _normal(draft.prompt)):
        return ANSWER_IN_QUESTION
    return None


class NearDuplicates:
    """The questions kept so far, as MinHashes of their word 3-grams in an LSH index."""

    def __init__(self, threshold: float = QUESTION_SIMILARITY, permutations: int = 128):
        from datasketch import MinHashLSH

        self._lsh = MinHashLSH(threshold=threshold, num_perm=permutations)
        self._permutations = permutations

    def _minhash(self, text: str):
        from datasketch import MinHash

        words = _normal(text).split()
        grams = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
        sketch = MinHash(num_perm=self._permutations, seed=1)
        sketch.update_batch([gram.encode() for gram in grams])
        return sketch

    def match(self, text: str) -> str | None:
        """The id of a kept question this one nearly copies, or None."""
        found = self._lsh.query(self._minhash(text))
        return min(found) if found else None

    def add(self, key: str, text: str) -> None:
        self._lsh.insert(key, self._minhash(text))


def shuffled(question: Question, rng: random.Random) -> Question:
    """The question with its options in another order, lettered A.. again (the answer follows)."""
    texts = list(question.options.values())
    order = list(range(len(texts)))
    while len(texts) > 1 and order == list(range(len(texts))):
        rng.shuffle(order)
    options = {LETTERS[new]: texts[old] for new, old in enumerate(order)}
    answer = None
    if question.answer is not None:
        right = list(question.options).index(question.answer)
        answer = LETTERS[order.index(right)]
    return Question(question.id, question.prompt, options, answer)


class ReaderChecks:
    """The shipped letter reader as the judge of a draft: one option order, with and without its passage."""

    def __init__(self, backend: Backend):
        self._readers = PromptReaders(backend, [LetterReader(backend, rotations=1)])

    def top_letters(self, questions: Sequence[Question], passages: Sequence[Passage | None]) -> list[str]:
        contexts = [
            NO_CONTEXT.context
            if passage is None
            else Context(passage.in_context(), (passage.id,), self._readers.count_tokens(passage.in_context()))
            for passage in passages
        ]
        readings = self._readers.read(questions, contexts)
        return [max(outputs[0].probabilities, key=outputs[0].probabilities.__getitem__) for outputs in readings]

    def too_easy(self, question: Question, rng: random.Random) -> bool:
        """Whether the reader picks the answer without the passage, the options shuffled."""
        mixed = shuffled(question, rng)
        return self.top_letters([mixed], [None]) == [mixed.answer]

    def agrees(self, question: Question, passage: Passage) -> bool:
        """Whether the reader, shown the passage, picks the writer's answer."""
        return self.top_letters([question], [passage]) == [question.answer]
