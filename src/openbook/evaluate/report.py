"""The files a run leaves: submission.csv, predictions.jsonl, run.json and, with answers, metrics.json."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from openbook.evaluate.submission import submission_letters, write_submission
from openbook.pipeline import QuestionResult, RetrievedContext, Run
from openbook.provenance import library_versions


def _evidence(retrieved: RetrievedContext) -> dict[str, object]:
    hits = {hit.passage.id: hit for hit in retrieved.hits}
    return {
        "retrieval": retrieved.retrieval,
        "tokens": retrieved.context.tokens,
        "passages": [{"id": pid, "title": hits[pid].passage.title, "score": hits[pid].score,
                      "text": hits[pid].passage.text} for pid in retrieved.context.passage_ids],
    }


def _prediction_record(result: QuestionResult) -> dict[str, object]:
    return {
        "id": result.question.id,
        "prediction": submission_letters(result.prediction.ranking),
        "ranking": list(result.prediction.ranking),
        "probabilities": result.prediction.probabilities,
        "answer": result.question.answer,
        "readers": {o.reader: o.probabilities for o in result.outputs},
        "contexts": [_evidence(retrieved) for retrieved in result.contexts],
    }


def write_run(run: Run, out: Path) -> dict[str, object]:
    """Write the run's files; return the metrics (empty when the exam has no answers)."""
    out.mkdir(parents=True, exist_ok=True)
    write_submission([r.prediction for r in run.results], out / "submission.csv")
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for result in run.results:
            handle.write(json.dumps(_prediction_record(result), ensure_ascii=False) + "\n")
    provenance = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "settings": run.settings, "versions": library_versions(("llama_cpp_python", "tantivy"))}
    status = {"questions_answered": len(run.results), "failure": run.failure}
    (out / "run.json").write_text(json.dumps({**provenance, **status, "seconds": run.seconds}, indent=2) + "\n")
    scores = run.scores()
    if scores is None:
        return {}
    metrics = {"map@3": scores.map_at_3, "accuracy": scores.accuracy, "count": scores.count,
               "complete": run.failure is None, "seconds": run.seconds, **provenance}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
