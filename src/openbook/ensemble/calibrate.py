"""Calibrated confidence: temperature scaling of option scores and the expected calibration error.

A reader's probabilities are often over- or under-confident. Temperature scaling divides the log
scores by one T fitted (on validation questions with answers) to minimise the negative
log-likelihood of the right option; it never changes a ranking, only how sure the answer claims to be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FLOOR = 1e-9  # probabilities are clipped here before logs
ECE_BINS = 10
TEMPERATURE_RANGE = (0.05, 20.0)


def log_scores(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, FLOOR, 1.0))


def with_temperature(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of `scores / temperature` (scores: log-probabilities or any logits)."""
    scaled = scores / temperature
    scaled = np.exp(scaled - scaled.max())
    return scaled / scaled.sum()


def negative_log_likelihood(score_rows: Sequence[np.ndarray], answers: Sequence[int], temperature: float) -> float:
    total = 0.0
    for scores, answer in zip(score_rows, answers):
        total -= np.log(max(with_temperature(scores, temperature)[answer], FLOOR))
    return total / max(len(answers), 1)


def fit_temperature(score_rows: Sequence[np.ndarray], answers: Sequence[int]) -> float:
    """The T in TEMPERATURE_RANGE that minimises the validation NLL (1.0 with nothing to fit)."""
    from scipy.optimize import minimize_scalar

    if not answers:
        return 1.0
    low, high = np.log(TEMPERATURE_RANGE)
    found = minimize_scalar(
        lambda log_t: negative_log_likelihood(score_rows, answers, float(np.exp(log_t))),
        bounds=(low, high),
        method="bounded",
    )
    return float(np.exp(found.x))


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float  # mean confidence of its answers (0 when empty)
    accuracy: float  # share of them right (0 when empty)


def reliability_bins(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> list[ReliabilityBin]:
    """Equal-width confidence bins with the mean confidence and the accuracy of the answers in each."""
    confidence = np.asarray(confidences, dtype=float)
    hits = np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    found = []
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        found.append(
            ReliabilityBin(
                float(edges[b]),
                float(edges[b + 1]),
                count,
                float(confidence[members].mean()) if count else 0.0,
                float(hits[members].mean()) if count else 0.0,
            )
        )
    return found


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence|, weighted by the bin's share."""
    if not confidences:
        return 0.0
    total = len(confidences)
    return float(
        sum(b.count / total * abs(b.accuracy - b.confidence) for b in reliability_bins(confidences, correct, bins))
    )
