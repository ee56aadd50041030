"""Reviewing finished runs: a run folder read back as a summary, and two runs of the same questions
compared answer by answer (the paired MAP@3 difference with its standard error, and the questions
that changed). `openbook show` and `openbook compare` print these; benchmarks compare runs with them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbook.ensemble.calibrate import ECE_BINS, ReliabilityBin, expected_calibration_error, reliability_bins
from openbook.errors import InputError
from openbook.metrics import average_precision_at_3
from openbook.records import LETTERS, Question
from openbook.retrieve.source import MATCH_THRESHOLD, overlap_with_source
from openbook.runlog import PREDICTIONS_FILE, RUN_FILE, Record, read_records

RECALL_AT = (1, 3, 5)  # ranks among the passages a question read


@dataclass(frozen=True)
class RunFolder:
    """What a run folder holds: its run.json and its answers, the last per question."""

    path: Path
    run: Mapping[str, Any]
    records: tuple[Record, ...]

    @classmethod
    def read(cls, path: Path) -> RunFolder:
        path = Path(path)
        for name in (RUN_FILE, PREDICTIONS_FILE):
            if not (path / name).is_file():
                raise InputError(path, f"not a run folder (no {name}); pass the --out folder of `openbook answer`")
        try:
            run = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(path / RUN_FILE, f"not JSON ({error})") from error
        return cls(path, run, tuple(read_records(path / PREDICTIONS_FILE)))

    def scores(self) -> dict[str, float]:
        """AP@3 of each question that has an answer."""
        return {
            str(r["id"]): average_precision_at_3(r["ranking"], r["answer"]) for r in self.records if r.get("answer")
        }


@dataclass(frozen=True)
class StageScore:
    questions: int
    map3: float | None  # None: no answers


@dataclass(frozen=True)
class RunSummary:
    path: Path
    questions: int
    answered: int  # of them with a gold answer
    map3: float | None
    accuracy: float | None
    seconds_per_question: float
    budget_seconds: float | None  # a cascade's budget; None: no limit or one stage
    total_seconds: float
    stages: dict[str, StageScore]  # which stage decided each question
    predicted_letters: dict[str, int]  # top answers per letter
    gold_letters: dict[str, int]
    model: str
    settings: Mapping[str, Any]
    versions: Mapping[str, Any]

    @property
    def budget_used(self) -> float | None:
        return self.total_seconds / self.budget_seconds if self.budget_seconds else None


def summarize(folder: RunFolder) -> RunSummary:
    records = folder.records
    scores = folder.scores()
    answered = [r for r in records if r.get("answer")]
    by_stage: dict[str, list[Record]] = {}
    for record in records:
        by_stage.setdefault(str(record.get("stage", "first")), []).append(record)
    cascade = folder.run.get("cascade") or {}
    seconds = folder.run.get("seconds", {})
    settings = folder.run.get("settings", {})
    return RunSummary(
        path=folder.path,
        questions=len(records),
        answered=len(answered),
        map3=statistics.mean(scores.values()) if scores else None,
        accuracy=statistics.mean(r["ranking"][0] == r["answer"] for r in answered) if answered else None,
        seconds_per_question=float(seconds.get("per_question", 0.0)),
        budget_seconds=cascade.get("budget_seconds"),
        total_seconds=float(seconds.get("total", 0.0)) + float(seconds.get("earlier_runs", 0.0)),
        stages={stage: _stage_score(rs, scores) for stage, rs in sorted(by_stage.items())},
        predicted_letters=_letters(r["ranking"][0] for r in records),
        gold_letters=_letters(r["answer"] for r in answered),
        model=str(settings.get("model", "")),
        settings=settings,
        versions=folder.run.get("versions", {}),
    )


def _stage_score(records: list[Record], scores: Mapping[str, float]) -> StageScore:
    mine = [scores[str(r["id"])] for r in records if str(r["id"]) in scores]
    return StageScore(len(records), statistics.mean(mine) if mine else None)


def _letters(letters: Any) -> dict[str, int]:
    counts = Counter(letters)
    return {letter: counts.get(letter, 0) for letter in LETTERS}


def graded(folder: RunFolder) -> list[tuple[float, bool]]:
    """(confidence, first answer right) of each question with an answer."""
    return [(float(r["confidence"]), r["ranking"][0] == r["answer"]) for r in folder.records if r.get("answer")]


def reliability(folder: RunFolder, bins: int = ECE_BINS) -> tuple[list[ReliabilityBin], float]:
    """The run's reliability diagram (confidence bins against accuracy) and its ECE."""
    pairs = graded(folder)
    confidences, correct = [c for c, _ in pairs], [right for _, right in pairs]
    return reliability_bins(confidences, correct, bins), expected_calibration_error(confidences, correct, bins)


@dataclass(frozen=True)
class SourceRecall:
    """Whether the evidence a run read held the passage each question was written from (the exam's
    `context` column), by the same text-overlap rule as `openbook eval-retrieval`."""

    questions: int  # answered questions whose exam row gives its source passage
    read: int  # of them, read with a passage drawn from it
    recall: dict[int, float]  # share with such a passage among the first k read

    @property
    def share(self) -> float:
        return self.read / self.questions if self.questions else 0.0


def source_recall(folder: RunFolder, exam: Sequence[Question], column: str = "context") -> SourceRecall | None:
    """The run's recall of each question's source passage among the passages it read, in the order
    retrieved (a re-read's own context after the first pass's); None where the exam gives no sources."""
    sources = {q.id: q.extra[column] for q in exam if q.extra.get(column, "").strip()}
    ranks: list[int | None] = []
    for record in folder.records:
        source = sources.get(str(record["id"]))
        if source is None:
            continue
        read = [p["text"] for context in record.get("contexts", []) for p in context.get("passages", [])]
        ranks.append(
            next((rank for rank, text in enumerate(read) if overlap_with_source(text, source) >= MATCH_THRESHOLD), None)
        )
    if not ranks:
        return None
    recall = {k: sum(r is not None and r < k for r in ranks) / len(ranks) for k in RECALL_AT}
    return SourceRecall(len(ranks), sum(r is not None for r in ranks), recall)


def question_seconds(folder: RunFolder) -> dict[str, list[float]]:
    """The model's seconds on each question, by the stage that decided it (empty where the log does
    not record them)."""
    by_stage: dict[str, list[float]] = {}
    for record in folder.records:
        if record.get("seconds") is not None:
            by_stage.setdefault(str(record.get("stage", "first")), []).append(float(record["seconds"]))
    return by_stage


def coverage_curve(folder: RunFolder) -> list[tuple[float, float]]:
    """Accuracy when answering only the most confident questions: (share answered, accuracy) as the
    share grows one question at a time, most confident first."""
    ranked = sorted(graded(folder), key=lambda pair: -pair[0])
    curve, right = [], 0
    for count, (_, correct) in enumerate(ranked, start=1):
        right += correct
        curve.append((count / len(ranked), right / count))
    return curve


@dataclass(frozen=True)
class Comparison:
    """Run B against run A on the questions both answered with a gold answer."""

    questions: int
    map3_a: float
    map3_b: float
    difference: float  # mean of B's AP@3 minus A's, per question
    standard_error: float
    better: tuple[str, ...]  # question ids where B scored higher
    worse: tuple[str, ...]
    top_changed: tuple[str, ...]  # question ids whose first answer differs
    only_in_one: int  # questions answered by one run only

    def describe(self) -> str:
        if not self.better and not self.worse:
            return f"+0.000: no question scored otherwise (n={self.questions})"
        return f"{self.difference:+.3f} ± {self.standard_error:.3f} MAP@3 (n={self.questions})"


def compare(a: RunFolder, b: RunFolder) -> Comparison:
    scores_a, scores_b = a.scores(), b.scores()
    common = [qid for qid in scores_a if qid in scores_b]
    if not common:
        raise InputError(b.path, f"shares no question with an answer with {a.path}: nothing to compare")
    differences = [scores_b[q] - scores_a[q] for q in common]
    error = statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else math.nan
    first_a = {str(r["id"]): r["ranking"][0] for r in a.records}
    first_b = {str(r["id"]): r["ranking"][0] for r in b.records}
    return Comparison(
        questions=len(common),
        map3_a=statistics.mean(scores_a[q] for q in common),
        map3_b=statistics.mean(scores_b[q] for q in common),
        difference=statistics.mean(differences),
        standard_error=error,
        better=tuple(q for q, d in zip(common, differences) if d > 0),
        worse=tuple(q for q, d in zip(common, differences) if d < 0),
        top_changed=tuple(q for q in first_a if q in first_b and first_a[q] != first_b[q]),
        only_in_one=len(set(first_a) ^ set(first_b)),
    )
