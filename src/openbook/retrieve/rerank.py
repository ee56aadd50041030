"""Rerankers: reorder a question's candidate passages with a closer look than the retriever's.

- `edit`: fuzzy string similarity between the question (prompt + options) and the passage
  (rapidfuzz token-set ratio), the 4th place's cheap edit-distance ordering.
- `embed-question` / `embed-options` / `embed`: cosine similarity of the passage to the prompt, to
  the best-matching "prompt + option", or the mean of both, with a sentence embedder. Works over
  any candidates, so it brings dense scoring to a BM25 index that was never embedded.
- `cross:MODEL`: a sentence-transformers cross-encoder (path or hub id) scoring (question, passage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from openbook.embed import Embedder
from openbook.errors import ConfigError, OpenbookError
from openbook.models import local_model_location
from openbook.records import Hit, Question
from openbook.retrieve.query import joint_query, option_queries


class Reranker(Protocol):
    name: str

    def rerank(self, questions: Sequence[Question], hit_lists: Sequence[Sequence[Hit]]) -> list[list[Hit]]:
        """Each question's hits reordered best first, scores replaced by the reranker's."""
        ...


def _reordered(hits: Sequence[Hit], scores: Sequence[float], name: str) -> list[Hit]:
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], hits[i].rank))  # ties keep retrieval order
    return [
        replace(hits[i], score=float(scores[i]), rank=rank, retriever=f"{hits[i].retriever}>{name}")
        for rank, i in enumerate(order)
    ]


class EditDistanceReranker:
    name = "edit"

    def rerank(self, questions: Sequence[Question], hit_lists: Sequence[Sequence[Hit]]) -> list[list[Hit]]:
        from rapidfuzz import fuzz

        return [
            _reordered(hits, [fuzz.token_set_ratio(joint_query(q), h.passage.indexed_text()) for h in hits], self.name)
            for q, hits in zip(questions, hit_lists)
        ]


class EmbeddingReranker:
    """Passage vectors come from the index's dense store when it was built with the same embedder
    (`stored`: rows -> vectors), else are embedded on the fly and cached by passage id (questions of
    one exam share many candidates)."""

    MODES = ("embed-question", "embed-options", "embed")

    def __init__(
        self,
        embedder: Embedder,
        mode: str = "embed",
        stored: Callable[[list[int]], np.ndarray] | None = None,
        cache_limit: int = 200_000,
    ):
        if mode not in self.MODES:
            raise ConfigError(f"unknown embedding reranker {mode!r}; choose from {', '.join(self.MODES)}")
        self.embedder, self.name, self.stored = embedder, mode, stored
        self._cache: dict[str, np.ndarray] = {}
        self._cache_limit = cache_limit

    def _passage_vectors(self, hits: Sequence[Hit]) -> np.ndarray:
        if not hits:
            return np.zeros((0, self.embedder.dimension), dtype=np.float32)
        if self.stored is not None and all(h.row >= 0 for h in hits):
            return self.stored([h.row for h in hits])
        missing = list({h.passage.id: h for h in hits if h.passage.id not in self._cache}.values())
        if missing:
            if len(self._cache) + len(missing) > self._cache_limit:
                self._cache.clear()
                missing = list({h.passage.id: h for h in hits}.values())
            vectors = self.embedder.encode([h.passage.indexed_text() for h in missing], "passage")
            self._cache.update(zip((h.passage.id for h in missing), vectors))
        return np.stack([self._cache[h.passage.id] for h in hits])

    def rerank(self, questions: Sequence[Question], hit_lists: Sequence[Sequence[Hit]]) -> list[list[Hit]]:
        if self.stored is None:  # one batched encode for every question's candidates
            self._passage_vectors([h for hits in hit_lists for h in hits])
        prompts = self.embedder.encode([q.prompt for q in questions], "query")
        per_option = [option_queries(q) for q in questions]
        options = self.embedder.encode([text for texts in per_option for text in texts], "query")
        reranked: list[list[Hit]] = []
        start = 0
        for number, hits in enumerate(hit_lists):
            own_options = options[start : start + len(per_option[number])]
            start += len(per_option[number])
            if not hits:
                reranked.append([])
                continue
            passages = self._passage_vectors(hits)
            to_prompt = passages @ prompts[number]
            to_options = (passages @ own_options.T).max(axis=1)
            scores = {"embed-question": to_prompt, "embed-options": to_options, "embed": (to_prompt + to_options) / 2}[
                self.name
            ]
            reranked.append(_reordered(hits, scores.tolist(), self.name))
        return reranked


def check_cross_encoder(model: str, location: str) -> None:
    """A cross-encoder is a sequence classifier with one relevance score: an embedder (whose head
    would start random, so its order would be noise) or a several-label model (NLI) is refused."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location, local_files_only=True)
    classifier = any(name.endswith("ForSequenceClassification") for name in config.architectures or [])
    if not classifier or config.num_labels != 1:
        raise OpenbookError(
            f"{model} is not a cross-encoder with one relevance score (architectures "
            f"{config.architectures}, {config.num_labels} labels): train one with "
            "`openbook train cross-encoder`, or name a pretrained one"
        )


class CrossEncoderReranker:
    def __init__(self, model: str, batch_size: int = 32):
        from sentence_transformers import CrossEncoder

        self.name = f"cross:{model}"
        location = local_model_location(model)
        try:
            check_cross_encoder(model, location)
            self.model = CrossEncoder(location, local_files_only=True)
        except OSError as error:
            raise OpenbookError(f"cannot load cross-encoder {model!r} offline: {error}") from None
        self.batch_size = batch_size

    def rerank(self, questions: Sequence[Question], hit_lists: Sequence[Sequence[Hit]]) -> list[list[Hit]]:
        pairs = [(joint_query(q), h.passage.indexed_text()) for q, hits in zip(questions, hit_lists) for h in hits]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False) if pairs else []
        reranked: list[list[Hit]] = []
        start = 0
        for hits in hit_lists:
            reranked.append(_reordered(hits, [float(s) for s in scores[start : start + len(hits)]], self.name))
            start += len(hits)
        return reranked
