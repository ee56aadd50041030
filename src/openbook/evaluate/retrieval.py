"""How well retrieval finds the passage a question was written from (llmse-stem-1k's `context`).

A retrieved passage counts as the source by text overlap, and rows whose `context` is not really
their source can be left out ("grounded rows"): both rules live in `retrieve/source.py`, which the
cross-encoder's training shares; their names are re-exported here.

Recall@k: the share of questions with a source passage among the first k; MRR: the mean of
1 / rank of the first source passage within the retrieved depth (0 if none).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from openbook.errors import OpenbookError
from openbook.records import Question
from openbook.retrieve.plan import Retrieval, RetrievalSpec
from openbook.retrieve.source import MATCH_THRESHOLD, first_source_rank, grounded_questions, overlap_with_source

RECALL_AT = (1, 5, 20)

__all__ = [
    "MATCH_THRESHOLD",
    "RECALL_AT",
    "RetrievalScores",
    "evaluate_retrieval",
    "first_source_rank",
    "grounded_questions",
    "overlap_with_source",
    "score_ranks",
]


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
        raise OpenbookError(f"no question has a source passage in its {context_column!r} column")
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
