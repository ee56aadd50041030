"""The small records every stage speaks: documents, passages, questions, hits, predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

LETTERS = ("A", "B", "C", "D", "E")


@dataclass(frozen=True, slots=True)
class Document:
    """One article (or other unit of text) as read from a corpus file."""

    id: str
    title: str
    text: str
    source: str = ""  # the input file it came from


@dataclass(frozen=True, slots=True)
class Passage:
    """A sentence-aligned piece of a document; `id` is stable for the same corpus and settings."""

    id: str
    doc_id: str
    title: str
    text: str
    chunk: int = 0

    def indexed_text(self) -> str:
        """What retrieval sees: the title kept with every passage of its article."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class Question:
    """A multiple-choice question: 2 to 5 present options keyed by their original letters."""

    id: str
    prompt: str
    options: dict[str, str]
    answer: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(self.options)


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage with its score and rank (0 = best) for one query."""

    passage: Passage
    score: float
    rank: int
    retriever: str = ""
    row: int = -1  # the passage's row in its index's store (-1: not from a store)


@dataclass(frozen=True, slots=True)
class Prediction:
    """A ranking of a question's letters, best first, with the probabilities behind it and how sure
    the top answer is (calibrated when a fitted ensemble made it)."""

    question_id: str
    ranking: tuple[str, ...]
    probabilities: dict[str, float] = field(default_factory=dict)
    confidence: float | None = None
    calibrated: bool = False
