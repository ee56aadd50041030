"""Which retrieved passage a question was written from (llmse-stem-1k's `context` column), and which
rows of such an exam can be trusted to carry their own source: used by `openbook eval-retrieval`
(`evaluate/retrieval.py`) and by the cross-encoder's training pairs (`train/cross_encoder.py`).

Matching by text overlap: the corpus chunks the source passage differently from the exam (and may
hold it from another Wikipedia dump), so ids cannot be compared. A retrieved passage counts as the
source when at least half of its word 5-grams (lower-cased alphanumeric words; the whole passage
when it has fewer than 5 words) occur in the question's context. A chunk cut from the source
passage scores 1.0; a passage of another article sharing a phrase or two stays far below 0.5.

Grounded rows. The `context` column of llmse-stem-1k is not always the passage a question was
written from: in about one row in six it is a neighbouring row's (the words of the prompt and
correct answer are covered clearly better by the context of a row ±1 or ±2 away: "What are some of
the research contributions made by the university?" carries a context on industry-funded
research, while the row before holds "The university has made noted research contributions to
modeling…"), and in many others it is an unrelated retrieved text ("Who first proposed the
technique of PIXE?" with a context on Pimentel and Pise). No retriever can find such a "source".
So `grounded_questions` keeps the rows whose own context holds at least half of the content words
of their prompt and correct answer, and no neighbour's context holds clearly more (by 0.1).
"""

from __future__ import annotations

from collections.abc import Sequence

from openbook.records import Hit, Question
from openbook.retrieve.context import word_coverage, words

SHINGLE = 5
MATCH_THRESHOLD = 0.5


def _shingles(sequence: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(sequence[i : i + n]) for i in range(len(sequence) - n + 1)}


def overlap_with_source(passage_text: str, context: str) -> float:
    """The share of the passage's word 5-grams found in `context` (see the module's docstring)."""
    passage_words = words(passage_text)
    n = min(SHINGLE, len(passage_words))
    if n == 0:
        return 0.0
    shingles = _shingles(passage_words, n)
    return len(shingles & _shingles(words(context), n)) / len(shingles)


def first_source_rank(hits: Sequence[Hit], context: str) -> int | None:
    """0-based rank of the first hit drawn from `context`, or None."""
    for hit in hits:
        if overlap_with_source(hit.passage.text, context) >= MATCH_THRESHOLD:
            return hit.rank
    return None


def grounded_questions(
    questions: Sequence[Question], context_column: str = "context", min_coverage: float = 0.5, margin: float = 0.1
) -> list[Question]:
    """The questions whose own context carries them (see the module's docstring); questions
    without an answer are kept, since there is nothing to check."""
    kept = []
    for i, question in enumerate(questions):
        if question.answer is None:
            kept.append(question)
            continue
        text = f"{question.prompt} {question.options[question.answer]}"
        own = word_coverage(text, question.extra.get(context_column, ""))
        neighbours = [
            word_coverage(text, questions[j].extra.get(context_column, ""))
            for j in (i - 2, i - 1, i + 1, i + 2)
            if 0 <= j < len(questions)
        ]
        if own >= min_coverage and (not neighbours or max(neighbours) <= own + margin):
            kept.append(question)
    return kept
