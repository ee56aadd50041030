"""Kaggle's MAP@3 and top-1 accuracy.

MAP@3 (LLM Science Exam): for each question, 1/k where k (1..3) is the position of the first
correct letter among the first three predictions, else 0; a correct letter repeated later counts
once, so "A A B" with answer B scores 1/3 and "B B B" scores 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def average_precision_at_3(ranking: Sequence[str], answer: str) -> float:
    for position, letter in enumerate(ranking[:3], start=1):
        if letter == answer:
            return 1.0 / position
    return 0.0


@dataclass(frozen=True, slots=True)
class Scores:
    map_at_3: float
    accuracy: float
    count: int


def score_rankings(pairs: Iterable[tuple[Sequence[str], str]]) -> Scores:
    """Mean AP@3 and accuracy over (ranking, answer) pairs."""
    total_ap = total_correct = 0.0
    count = 0
    for ranking, answer in pairs:
        total_ap += average_precision_at_3(ranking, answer)
        total_correct += 1.0 if ranking and ranking[0] == answer else 0.0
        count += 1
    if count == 0:
        return Scores(map_at_3=0.0, accuracy=0.0, count=0)
    return Scores(map_at_3=total_ap / count, accuracy=total_correct / count, count=count)
