"""Ensembles fitted on validation questions (the 2nd place fused readers with a learned ranker).

Three ways to combine readers, all producing calibrated probabilities per option:

- `mean`: the plain average of the readers' probabilities (what `openbook answer` does unfitted);
- `weighted`: each reader's probabilities sharpened or softened by its own temperature, then a
  weighted average, weights fitted to minimise the validation negative log-likelihood;
- `ranker`: logistic regression over per-option features (every reader's log-probability and its
  gap to that reader's best option, plus how much of the option's wording the retrieved context
  contains), its scores turned into probabilities with a softmax across the question's options.

`fit_ensemble` cross-validates the three on the validation questions, keeps the best MAP@3 (ties go
to the simpler), refits it on all of them, and fits a final temperature on its out-of-fold scores,
so the confidence it reports was calibrated on answers it had not been fitted to. Models are saved
as JSON: coefficients, not pickles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from openbook.ensemble.calibrate import expected_calibration_error, fit_temperature, log_scores, with_temperature
from openbook.ensemble.features import ScoredQuestion
from openbook.errors import OpenbookError, require_modules
from openbook.files import write_atomically
from openbook.metrics import score_rankings

METHODS = ("mean", "weighted", "ranker")
ENSEMBLE_FILE = "ensemble.json"  # what `openbook ensemble fit --out FOLDER` writes in it
SIMPLICITY = {name: i for i, name in enumerate(METHODS)}


def ranking_of(letters: Sequence[str], probabilities: np.ndarray) -> tuple[str, ...]:
    order = sorted(range(len(letters)), key=lambda i: (-probabilities[i], letters[i]))
    return tuple(letters[i] for i in order)


@dataclass
class Ensemble:
    """A fitted combination of named readers. `scores` are log-space option scores; `temperature`
    turns them into the calibrated probabilities that are reported."""

    method: str
    readers: list[str]
    temperatures: dict[str, float] = field(default_factory=dict)  # weighted: per reader
    weights: dict[str, float] = field(default_factory=dict)  # weighted: per reader
    coefficients: list[float] = field(default_factory=list)  # ranker: per feature
    intercept: float = 0.0
    temperature: float = 1.0
    validation: dict[str, object] = field(default_factory=dict)  # what the fit measured

    def covers(self, readers: set[str]) -> bool:
        """Whether outputs of these readers are enough for it: all of the readers it was fitted on
        (a weight or coefficient fitted with a reader means nothing without it)."""
        return set(self.readers) <= readers

    def scores(self, question: ScoredQuestion) -> np.ndarray:
        missing = sorted(set(self.readers) - set(question.readers))
        if missing:
            raise OpenbookError(
                f"question {question.id}: the ensemble was fitted on readers {self.readers}; "
                f"{missing} were not run (it has {sorted(question.readers)})"
            )
        if self.method == "ranker":
            return option_features(question, self.readers) @ np.asarray(self.coefficients) + self.intercept
        if self.method == "mean":
            pooled = np.asarray(sum(question.readers[name] for name in self.readers)) / len(self.readers)
        else:
            total = sum(self.weights.values()) or 1.0
            pooled = np.asarray(
                sum(
                    self.weights[name]
                    / total
                    * with_temperature(log_scores(question.readers[name]), self.temperatures[name])
                    for name in self.readers
                )
            )
        return log_scores(pooled)

    def probabilities(self, question: ScoredQuestion) -> np.ndarray:
        return with_temperature(self.scores(question), self.temperature)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Ensemble:
        """From the file `save` wrote, or the folder holding it (`openbook ensemble fit --out`)."""
        path = Path(path)
        if path.is_dir():
            path = path / ENSEMBLE_FILE
        try:
            data = json.loads(Path(path).read_text())
            ensemble = cls(**data)
        except FileNotFoundError:
            raise OpenbookError(f"{path}: no such ensemble file (make one with `openbook ensemble fit`)") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise OpenbookError(f"{path}: not an ensemble file from `openbook ensemble fit` ({error})") from None
        if ensemble.method not in METHODS:
            raise OpenbookError(f"{path}: unknown ensemble method {ensemble.method!r}")
        return ensemble


def option_features(question: ScoredQuestion, readers: Sequence[str]) -> np.ndarray:
    """(options × features): per reader log P and log P minus the reader's best; then context coverage."""
    columns = []
    for name in readers:
        logs = log_scores(question.readers[name])
        columns += [logs, logs - logs.max()]
    columns.append(question.coverage)
    return np.stack(columns, axis=1)


def feature_names(readers: Sequence[str]) -> list[str]:
    return [f"{kind}:{name}" for name in readers for kind in ("log_p", "gap")] + ["context_coverage"]


def _answer_index(question: ScoredQuestion) -> int:
    return question.letters.index(question.answer)


def _fit_weighted(questions: Sequence[ScoredQuestion], readers: Sequence[str]) -> Ensemble:
    from scipy.optimize import minimize

    answers = [_answer_index(q) for q in questions]
    temperatures = {
        name: fit_temperature([log_scores(q.readers[name]) for q in questions], answers) for name in readers
    }
    calibrated = {
        name: [with_temperature(log_scores(q.readers[name]), temperatures[name]) for q in questions] for name in readers
    }

    def loss(raw: np.ndarray) -> float:
        weights = np.exp(raw - raw.max())
        weights /= weights.sum()
        total = 0.0
        for i, answer in enumerate(answers):
            total -= np.log(max(sum(w * calibrated[name][i][answer] for w, name in zip(weights, readers)), 1e-12))
        return total / len(answers)

    found = minimize(loss, np.zeros(len(readers)), method="L-BFGS-B")
    weights = np.exp(found.x - found.x.max())
    weights /= weights.sum()
    return Ensemble(
        "weighted",
        list(readers),
        temperatures=temperatures,
        weights={name: float(w) for name, w in zip(readers, weights)},
    )


def _fit_ranker(questions: Sequence[ScoredQuestion], readers: Sequence[str], seed: int) -> Ensemble:
    from sklearn.linear_model import LogisticRegression

    features = np.concatenate([option_features(q, readers) for q in questions])
    labels = np.concatenate([[letter == q.answer for letter in q.letters] for q in questions]).astype(int)
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(features, labels)
    return Ensemble(
        "ranker", list(readers), coefficients=[float(c) for c in model.coef_[0]], intercept=float(model.intercept_[0])
    )


def fit_method(method: str, questions: Sequence[ScoredQuestion], readers: Sequence[str], seed: int = 13) -> Ensemble:
    if method == "mean":
        return Ensemble("mean", list(readers))
    if method == "weighted":
        return _fit_weighted(questions, readers)
    if method == "ranker":
        return _fit_ranker(questions, readers, seed)
    raise OpenbookError(f"unknown ensemble method {method!r}; choose from {', '.join(METHODS)}")


@dataclass(frozen=True)
class MethodScore:
    method: str
    map_at_3: float
    accuracy: float
    nll: float
    ece: float  # of the out-of-fold probabilities after their temperature


def _folds(count: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(count)
    return [order[i::folds] for i in range(folds)]


def out_of_fold_scores(
    method: str, questions: Sequence[ScoredQuestion], readers: Sequence[str], folds: int = 5, seed: int = 13
) -> list[np.ndarray]:
    """Each question's ensemble scores from a fit that did not see it."""
    scores: list[np.ndarray | None] = [None] * len(questions)
    for held_out in _folds(len(questions), folds, seed):
        held = set(held_out.tolist())
        model = fit_method(method, [q for i, q in enumerate(questions) if i not in held], readers, seed)
        for i in held_out:
            scores[i] = model.scores(questions[i])
    return scores  # type: ignore[return-value]


def evaluate_scores(
    questions: Sequence[ScoredQuestion], score_rows: Sequence[np.ndarray], method: str, folds: int = 5, seed: int = 13
) -> tuple[MethodScore, float]:
    """How the out-of-fold `score_rows` rank and how well calibrated they are, and the temperature
    fitted on all of them (the one an ensemble keeps). The calibration reported is measured like the
    ranking, out of fold: each fold's scores under a temperature fitted on the other folds'."""
    answers = [_answer_index(q) for q in questions]
    temperature = fit_temperature(score_rows, answers)
    probabilities: list[np.ndarray] = [np.empty(0)] * len(questions)
    for held_out in _folds(len(questions), folds, seed):
        held = set(held_out.tolist())
        rest = [i for i in range(len(questions)) if i not in held]
        fold_temperature = fit_temperature([score_rows[i] for i in rest], [answers[i] for i in rest])
        for i in held_out:
            probabilities[i] = with_temperature(score_rows[i], fold_temperature)
    rankings = [(ranking_of(q.letters, p), q.letters[a]) for q, p, a in zip(questions, probabilities, answers)]
    scores = score_rankings(rankings)
    nll = float(np.mean([-np.log(max(p[a], 1e-12)) for p, a in zip(probabilities, answers)]))
    ece = expected_calibration_error([float(p.max()) for p in probabilities], [r[0] == a for (r, a) in rankings])
    return MethodScore(method, scores.map_at_3, scores.accuracy, nll, ece), temperature


def fit_ensemble(
    questions: Sequence[ScoredQuestion],
    readers: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    folds: int = 5,
    seed: int = 13,
) -> Ensemble:
    """Cross-validate `methods`, keep the best by MAP@3 (then NLL, then simplicity), refit it on all
    questions and calibrate its confidence on its out-of-fold scores."""
    require_modules("train", "scipy", *(("sklearn",) if "ranker" in methods else ()))
    if folds < 2:
        raise OpenbookError(f"cross-validation needs at least 2 folds; got {folds}")
    answered = [q for q in questions if q.answer in q.letters]
    if len(answered) < 2 * folds:
        raise OpenbookError(f"fitting an ensemble needs at least {2 * folds} answered questions; got {len(answered)}")
    if not readers:
        on_every = set.intersection(*(set(q.readers) for q in answered))
        on_some = sorted(set.union(*(set(q.readers) for q in answered)) - on_every)
        if on_some:  # fitted without them, an ensemble would ignore them where they were run
            raise OpenbookError(
                f"readers {on_some} read only some of the questions (a cascade re-reads the hardest): "
                "fit on runs that read every question alike (e.g. --triage none), or name the readers"
            )
        readers = sorted(on_every)
    if not readers:
        raise OpenbookError("no reader was run on every validation question")
    table, temperatures = {}, {}
    for method in methods:
        table[method], temperatures[method] = evaluate_scores(
            answered, out_of_fold_scores(method, answered, readers, folds, seed), method, folds, seed
        )
    best = min(methods, key=lambda m: (-round(table[m].map_at_3, 6), round(table[m].nll, 6), SIMPLICITY[m]))
    ensemble = fit_method(best, answered, readers, seed)
    ensemble.temperature = temperatures[best]
    ensemble.validation = {
        "questions": len(answered),
        "folds": folds,
        "seed": seed,
        "chosen": best,
        "features": feature_names(readers) if best == "ranker" else [],
        "cross_validation": {m: asdict(s) for m, s in table.items()},
    }
    return ensemble
