"""Sentence-level evidence: from the retrieved passages, the sentences that bear on the question and
its options, in document order, within a token budget.

Long questions spend their tokens on options, so whole passages leave little room: a budget of
64-256 tokens holds three to ten sentences, and the sentences a question was written from are the
ones that share its rare words. Each sentence is scored against the prompt and against the prompt
with each option (the best of them), by the share of the query's weight it holds, a word's weight
being its inverse frequency among the retrieved sentences (a word every sentence has tells nothing);
with an embedder, the cosine similarity to the best query is added. The best sentences go in, best
first, while they fit; they are shown in the order of the passages (by rank) and of the sentences
within each, under the passage's title.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from openbook.corpus.chunking import split_sentences
from openbook.embed.base import Embedder
from openbook.records import Context, Hit, Question
from openbook.retrieve.context import content_words, coverage_texts

PASSAGE_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Sentence:
    rank: int  # its passage's rank among the hits
    position: int  # its place in the passage
    text: str
    score: float


def score_sentences(question: Question, hits: Sequence[Hit], encoder: Embedder | None = None) -> list[Sentence]:
    """Every sentence of the hits, scored against the prompt and the prompt with each option."""
    found = [
        (rank, position, text)
        for rank, hit in enumerate(hits)
        for position, text in enumerate(split_sentences(hit.passage.text))
    ]
    if not found:
        return []
    queries = [question.prompt, *coverage_texts(question)]
    sentence_words = [content_words(text) for _, _, text in found]
    frequency = Counter(word for bag in sentence_words for word in bag)
    weight = {word: math.log(1 + len(found) / count) for word, count in frequency.items()}
    query_words = [content_words(query) for query in queries]
    lexical = np.array(
        [
            [
                sum(weight.get(w, 0.0) for w in wanted & bag) / max(sum(weight.get(w, 0.0) for w in wanted), 1e-9)
                for wanted in query_words
            ]
            for bag in sentence_words
        ]
    )
    scores = lexical.max(axis=1)
    if encoder is not None:
        vectors = _unit(encoder.encode([text for _, _, text in found], "passage"))
        query_vectors = _unit(encoder.encode(queries, "query"))
        scores = scores + (vectors @ query_vectors.T).max(axis=1)
    return [Sentence(rank, position, text, float(score)) for (rank, position, text), score in zip(found, scores)]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def select_evidence(
    question: Question,
    hits: Sequence[Hit],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    encoder: Embedder | None = None,
) -> Context:
    """The sentences of `hits` that bear on `question` most, within `budget_tokens`, in document order."""
    return choose_sentences(score_sentences(question, hits, encoder), hits, budget_tokens, count_tokens)


def choose_sentences(
    scored: Sequence[Sentence], hits: Sequence[Hit], budget_tokens: int, count_tokens: Callable[[str], int]
) -> Context:
    """The best-scored sentences that fit `budget_tokens` (counted on the rendered context, as the
    reader sees it), shown in document order; a sentence that shares nothing with the question is left
    out even where it would fit."""
    kept: list[Sentence] = []
    context = Context("", (), 0)
    ranked = sorted(scored, key=lambda s: (-s.score, s.rank, s.position))
    for sentence in (s for s in ranked if s.score > 0):  # one that shares nothing with the question is no evidence
        candidate = render(hits, [*kept, sentence], count_tokens)
        if candidate.tokens <= budget_tokens:
            kept.append(sentence)
            context = candidate
    return context


def render(hits: Sequence[Hit], sentences: Sequence[Sentence], count_tokens: Callable[[str], int]) -> Context:
    """The sentences under their passages' titles, passages in rank order, sentences in their order."""
    by_rank: dict[int, list[Sentence]] = {}
    for sentence in sorted(sentences, key=lambda s: (s.rank, s.position)):
        by_rank.setdefault(sentence.rank, []).append(sentence)
    pieces = [hits[rank].passage.in_context(" ".join(s.text for s in kept)) for rank, kept in by_rank.items()]
    text = PASSAGE_SEPARATOR.join(pieces)
    return Context(text, tuple(hits[rank].passage.id for rank in by_rank), count_tokens(text) if text else 0)
