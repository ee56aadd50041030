"""Combining readers' probabilities into one ranking per question."""

from openbook.ensemble.average import average_probabilities, rank

__all__ = ["average_probabilities", "rank"]
