"""Which passages questions are written from: the passages nearest a given exam's questions
(`--like`, science by default: the embedded default exam) or a topic list (`--topics`), never the
passages of held-out questions (`--exclude`: the passages retrieved for them, and any drawn from
their own `context`), in an order the seed fixes, so that a rerun meets them in the same order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from openbook.errors import InputError
from openbook.records import Passage, Question
from openbook.retrieve import AUTO, Retrieval
from openbook.retrieve.source import MATCH_THRESHOLD, overlap_with_source

MIN_SOURCE_WORDS = 20  # a shorter passage holds too little to ask a question about


@dataclass(frozen=True)
class SourcePool:
    passages: list[Passage]  # in the order they are written from
    excluded: int  # passages of held-out questions left out
    too_short: int  # passages under MIN_SOURCE_WORDS words left out


def topic_queries(path: Path) -> list[Question]:
    """One query per non-empty line of a topic list (`#` starts a comment)."""
    if not path.is_file():
        raise InputError(path, "topic list not found")
    topics = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    queries = [Question(f"topic-{n}", topic, {"A": ""}) for n, topic in enumerate(topics) if topic]
    if not queries:
        raise InputError(path, "no topic in the file (one per line)")
    return queries


def source_pool(
    retrieval: Retrieval,
    queries: Sequence[Question],
    per_query: int,
    exclude: Sequence[Question],
    seed: int,
    context_column: str = "context",
) -> SourcePool:
    """The best `per_query` passages for each query (by the index's default retrieval), each once,
    less the held-out questions' passages and the too short, shuffled by `seed`."""
    spec = retrieval.resolve(AUTO)
    held_out = {hit.passage.id for hits in retrieval.search(list(exclude), spec, per_query) for hit in hits}
    contexts = [q.extra[context_column] for q in exclude if q.extra.get(context_column, "").strip()]
    chosen: dict[str, Passage] = {}
    seen: set[str] = set()
    excluded = too_short = 0
    for hits in retrieval.search(list(queries), spec, per_query):
        for hit in hits:
            passage = hit.passage
            if passage.id in seen:
                continue
            seen.add(passage.id)
            if passage.id in held_out or any(overlap_with_source(passage.text, c) >= MATCH_THRESHOLD for c in contexts):
                excluded += 1
            elif len(passage.text.split()) < MIN_SOURCE_WORDS:
                too_short += 1
            else:
                chosen[passage.id] = passage
    passages = sorted(chosen.values(), key=lambda p: p.id)  # the same order whatever retrieval's ties did
    random.Random(seed).shuffle(passages)
    return SourcePool(passages, excluded, too_short)
