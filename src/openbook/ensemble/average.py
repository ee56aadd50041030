"""Weighted averaging of reader probabilities (equal weights unless given)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from openbook.records import Prediction, ReaderOutput


def average_probabilities(
    outputs: Sequence[ReaderOutput], weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    if not outputs:
        raise ValueError("nothing to average")
    total_weight = 0.0
    combined: dict[str, float] = {}
    for output in outputs:
        weight = 1.0 if weights is None else weights.get(output.reader, 0.0)
        total_weight += weight
        for letter, probability in output.probabilities.items():
            combined[letter] = combined.get(letter, 0.0) + weight * probability
    if total_weight <= 0:
        raise ValueError("the reader weights sum to zero")
    return {letter: value / total_weight for letter, value in combined.items()}


def rank(probabilities: Mapping[str, float]) -> tuple[str, ...]:
    """Letters best first; ties keep letter order, so a run is reproducible."""
    return tuple(sorted(probabilities, key=lambda letter: (-probabilities[letter], letter)))


def prediction_from(question_id: str, probabilities: Mapping[str, float], calibrated: bool = False) -> Prediction:
    """The prediction these probabilities make: letters ranked, the top one's probability as confidence."""
    ranking = rank(probabilities)
    return Prediction(
        question_id, ranking, dict(probabilities), confidence=probabilities[ranking[0]], calibrated=calibrated
    )
