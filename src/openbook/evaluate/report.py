"""The files a finished run leaves beside its predictions.jsonl: submission.csv, run.json and, with
answers, metrics.json. Each is written whole to a temporary file and renamed into place, so a stop
never leaves a half-written file where a good one was."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openbook.ensemble.calibrate import ECE_BINS, expected_calibration_error
from openbook.evaluate.submission import write_submission
from openbook.files import write_atomically
from openbook.metrics import score_rankings
from openbook.provenance import library_versions
from openbook.records import Prediction, Run
from openbook.runlog import PREDICTIONS_FILE, RUN_FILE, RUN_SECONDS_FIELD, jsonl_line, prediction_of, record_of

METRICS_FILE = "metrics.json"
SUBMISSION_FILE = "submission.csv"


def run_record(run: Run, header: Mapping[str, Any], earlier_answers: int) -> dict[str, Any]:
    """run.json of a finished (or stopped) run: its settings and plan (`header`), versions, status,
    where the time went, what the cascade did and which models read."""
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **header,
        "versions": library_versions(("llama_cpp_python", "tantivy")),
        "questions_answered": len(run.results) + earlier_answers,
        "answered_by_earlier_runs": earlier_answers,
        "failure": run.failure,
        "seconds": asdict(run.seconds),
        "model_paths": run.model_paths,
        "reader_names": list(run.reader_names),
        "cascade": asdict(run.cascade) if run.cascade is not None else False,
        "cluster": run.cluster,  # null: read in one process
    }


def write_run(
    run: Run,
    out: Path,
    header: Mapping[str, Any],
    previous: Sequence[Mapping[str, Any]] = (),
    seconds_before: float = 0.0,
) -> dict[str, Any]:
    """Write the run's files, predictions.jsonl whole (a `RunLog` wrote it line by line while
    answering); `previous` are the records of questions answered by an earlier, resumed run, which
    took `seconds_before`. Returns the metrics (empty when the exam has no answers)."""
    out.mkdir(parents=True, exist_ok=True)
    run_seconds = round(seconds_before + run.seconds.total, 3)
    records = [*previous, *({**record_of(result), RUN_SECONDS_FIELD: run_seconds} for result in run.results)]
    write_atomically(out / PREDICTIONS_FILE, "".join(map(jsonl_line, records)))
    earlier = [prediction_of(record) for record in previous]
    predictions = [*earlier, *(r.prediction for r in run.results)]
    partial_submission = out / (SUBMISSION_FILE + ".partial")
    write_submission(predictions, partial_submission)
    partial_submission.replace(out / SUBMISSION_FILE)
    described = run_record(run, header, len(earlier))
    write_atomically(out / RUN_FILE, json.dumps(described, indent=2) + "\n")
    answers = {str(r["id"]): str(r["answer"]) for r in previous if r.get("answer")}
    answers |= {r.question.id: r.question.answer for r in run.results if r.question.answer}
    metrics = score_predictions(predictions, answers)
    if not metrics:
        return {}
    metrics |= {"complete": run.failure is None, **described}
    write_atomically(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


def score_predictions(predictions: Sequence[Prediction], answers: Mapping[str, str]) -> dict[str, Any]:
    """MAP@3, accuracy and the confidence's calibration over the predictions that have an answer."""
    scored = [p for p in predictions if p.question_id in answers]
    if not scored:
        return {}
    scores = score_rankings((p.ranking, answers[p.question_id]) for p in scored)
    correct = [p.ranking[0] == answers[p.question_id] for p in scored]
    calibration = {
        "ece": expected_calibration_error([p.confidence or 0.0 for p in scored], correct),
        "calibrated": all(p.calibrated for p in scored),
        "bins": ECE_BINS,
    }
    return {"map@3": scores.map_at_3, "accuracy": scores.accuracy, "count": scores.count, "confidence": calibration}
