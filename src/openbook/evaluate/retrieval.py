"""How well retrieval finds the passage a question was written from (llmse-stem-1k's `context`).

Matching by text overlap: the corpus chunks the source passage differently from the exam (and may
hold it from another Wikipedia dump), so ids cannot be compared. A retrieved passage counts as the
source when at least half of its word 5-grams (lower-cased alphanumeric words; the whole passage
when it has fewer than 5 words) occur in the question's context. A chunk cut from the source
passage scores 1.0; a passage of another article sharing a phrase or two stays far below 0.5.

Recall@k: the share of questions with a source passage among the first k; MRR: the mean of
1 / rank of the first source passage within the retrieved depth (0 if none).

Grounded rows. The `context` column of llmse-stem-1k is not always the passage a question was
written from: in about one row in six it is a neighbouring row's (the words of the prompt and
correct answer are covered clearly better by the context of a row ±1 or ±2 away: "What are some of
the research contributions made by the university?" carries a context on industry-funded
research, while the row before holds "The university has made noted research contributions to
modeling…"), and in many others it is an unrelated retrieved text ("Who first proposed the
technique of PIXE?" with a context on Pimentel and Pise). No retriever can find such a "source".
So scores are reported on all rows and on the grounded ones (`grounded_questions`): rows whose own
context holds at least half of the content words of their prompt and correct answer, and no
neighbour's context holds clearly more (by 0.1).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from openbook.records import Hit, Question
from openbook.retrieve.context import word_coverage, words
from openbook.retrieve.plan import Retrieval, RetrievalSpec

SHINGLE = 5
MATCH_THRESHOLD = 0.5
RECALL_AT = (1, 5, 20)


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


@dataclass(frozen=True, slots=True)
class RetrievalScores:
    pipeline: str
    questions: int
    recall: dict[int, float]
    mrr: float
    ms_per_question: float

    def as_dict(self) -> dict[str, object]:
        return {
            "pipeline": self.pipeline,
            "questions": self.questions,
            "mrr": round(self.mrr, 4),
            "ms_per_question": round(self.ms_per_question, 1),
            **{f"recall@{k}": round(v, 4) for k, v in self.recall.items()},
        }


def score_ranks(pipeline: str, ranks: Sequence[int | None], seconds: float) -> RetrievalScores:
    count = max(len(ranks), 1)
    recall = {k: sum(r is not None and r < k for r in ranks) / count for k in RECALL_AT}
    mrr = sum(1 / (r + 1) for r in ranks if r is not None) / count
    return RetrievalScores(pipeline, len(ranks), recall, mrr, 1000 * seconds / count)


def evaluate_retrieval(
    questions: Sequence[Question],
    retrieval: Retrieval,
    specs: Sequence[RetrievalSpec],
    context_column: str = "context",
    grounded_ids: frozenset[str] | None = None,
) -> list[RetrievalScores]:
    """Each pipeline over the questions that carry their source passage (and, given `grounded_ids`,
    once more over those, labelled so: compute them with `grounded_questions` on the whole exam in
    file order, since grounding compares a row with its neighbours). The first search of a pipeline
    also loads its components, so a warm-up query runs before the clock starts."""
    with_source = [q for q in questions if q.extra.get(context_column, "").strip()]
    if not with_source:
        raise ValueError(f"no question has a source passage in its {context_column!r} column")
    scores = []
    for spec in specs:
        retrieval.search(with_source[:1], spec, max(RECALL_AT))  # load models and indexes untimed
        started = time.perf_counter()
        hit_lists = retrieval.search(with_source, spec, max(RECALL_AT))
        seconds = time.perf_counter() - started
        ranks = [first_source_rank(hits, q.extra[context_column]) for q, hits in zip(with_source, hit_lists)]
        scores.append(score_ranks(spec.label(), ranks, seconds))
        if grounded_ids is not None:
            kept = [rank for q, rank in zip(with_source, ranks) if q.id in grounded_ids]
            scores.append(score_ranks(f"{spec.label()} (grounded rows)", kept, seconds * len(kept) / len(ranks)))
    return scores
