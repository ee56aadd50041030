"""Combining readers' probabilities into one ranking per question: the plain average, and ensembles
fitted on validation questions (weighted, learned ranker) with calibrated confidence."""

from openbook.ensemble.average import average_probabilities, prediction_from, rank
from openbook.ensemble.features import ScoredQuestion, scored_from_runs, scored_question
from openbook.ensemble.learned import METHODS, Ensemble, fit_ensemble

__all__ = [
    "METHODS",
    "Ensemble",
    "ScoredQuestion",
    "average_probabilities",
    "fit_ensemble",
    "prediction_from",
    "rank",
    "scored_from_runs",
    "scored_question",
]
