"""How well retrieval finds the passage a question was written from (llmse-stem-1k's `context`).

Matching by text overlap: the corpus chunks the source passage differently from the exam (and may
hold it from another Wikipedia dump), so ids cannot be compared. A retrieved passage counts as the
source when at least half of its word 5-grams (lower-cased alphanumeric words; the whole passage
when it has fewer than 5 words) occur in the question's context. A chunk cut from the source
passage scores 1.0; a passage of another article sharing a phrase or two stays far below 0.5.

Recall@k: the share of questions with a source passage among the first k; MRR: the mean of
1 / rank of the first source passage within the retrieved depth (0 if none).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from openbook.retrieve.plan import Retrieval, RetrievalSpec
from openbook.types import Hit, Question

_WORD = re.compile(r"[a-z0-9]+")
SHINGLE = 5
MATCH_THRESHOLD = 0.5
RECALL_AT = (1, 5, 20)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _shingles(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def overlap_with_source(passage_text: str, context: str) -> float:
    """The share of the passage's word 5-grams found in `context` (see the module's docstring)."""
    words = _words(passage_text)
    n = min(SHINGLE, len(words))
    if n == 0:
        return 0.0
    shingles = _shingles(words, n)
    return len(shingles & _shingles(_words(context), n)) / len(shingles)


def first_source_rank(hits: Sequence[Hit], context: str) -> int | None:
    """0-based rank of the first hit drawn from `context`, or None."""
    for hit in hits:
        if overlap_with_source(hit.passage.text, context) >= MATCH_THRESHOLD:
            return hit.rank
    return None


@dataclass(frozen=True, slots=True)
class RetrievalScores:
    pipeline: str
    questions: int
    recall: dict[int, float]
    mrr: float
    ms_per_question: float

    def as_dict(self) -> dict[str, object]:
        return {"pipeline": self.pipeline, "questions": self.questions, "mrr": round(self.mrr, 4),
                "ms_per_question": round(self.ms_per_question, 1),
                **{f"recall@{k}": round(v, 4) for k, v in self.recall.items()}}


def score_ranks(pipeline: str, ranks: Sequence[int | None], seconds: float) -> RetrievalScores:
    count = max(len(ranks), 1)
    recall = {k: sum(r is not None and r < k for r in ranks) / count for k in RECALL_AT}
    mrr = sum(1 / (r + 1) for r in ranks if r is not None) / count
    return RetrievalScores(pipeline, len(ranks), recall, mrr, 1000 * seconds / count)


def evaluate_retrieval(questions: Sequence[Question], retrieval: Retrieval, specs: Sequence[RetrievalSpec],
                       context_column: str = "context") -> list[RetrievalScores]:
    """Each pipeline over the questions that carry their source passage; the first search of a
    pipeline also loads its components, so a warm-up query runs before the clock starts."""
    with_source = [q for q in questions if q.extra.get(context_column, "").strip()]
    scores = []
    for spec in specs:
        retrieval.search(with_source[:1], spec, max(RECALL_AT))  # load models and indexes untimed
        started = time.perf_counter()
        hit_lists = retrieval.search(with_source, spec, max(RECALL_AT))
        seconds = time.perf_counter() - started
        ranks = [first_source_rank(hits, q.extra[context_column]) for q, hits in zip(with_source, hit_lists)]
        scores.append(score_ranks(spec.label(), ranks, seconds))
    return scores
