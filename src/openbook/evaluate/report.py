"""The files a run leaves: predictions.jsonl (written as questions are answered), submission.csv,
run.json and, with answers, metrics.json."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from openbook.ensemble.calibrate import ECE_BINS, expected_calibration_error
from openbook.ensemble.features import latest_per_id
from openbook.errors import OpenbookError
from openbook.evaluate.submission import submission_letters, write_submission
from openbook.metrics import score_rankings
from openbook.pipeline import TRIAGE_SUFFIX, EarlierRun
from openbook.provenance import library_versions
from openbook.records import (
    Context,
    Hit,
    OrderReading,
    Passage,
    Prediction,
    Question,
    QuestionResult,
    ReaderOutput,
    RetrievedContext,
    Run,
)
from openbook.retrieve.context import render_passage


def _evidence(retrieved: RetrievedContext) -> dict[str, object]:
    hits = {hit.passage.id: hit for hit in retrieved.hits}
    return {
        "retrieval": retrieved.retrieval,
        "tokens": retrieved.context.tokens,
        "passages": [
            {"id": pid, "title": hits[pid].passage.title, "score": hits[pid].score, "text": hits[pid].passage.text}
            for pid in retrieved.context.passage_ids
        ],
    }


def _prediction_record(result: QuestionResult) -> dict[str, object]:
    return {
        "id": result.question.id,
        "prediction": submission_letters(result.prediction.ranking),
        "ranking": list(result.prediction.ranking),
        "probabilities": result.prediction.probabilities,
        "confidence": result.prediction.confidence,
        "calibrated": result.prediction.calibrated,
        "answer": result.question.answer,
        "readers": {o.reader: o.probabilities for o in result.outputs},
        # letter readers' uncalibrated readings, so a resumed run can estimate the letter prior again
        "orders": {
            o.reader: {"first": o.orders.first_order, "logprobs": o.orders.logprobs}
            for o in result.outputs
            if o.orders is not None
        },
        "contexts": [_evidence(retrieved) for retrieved in result.contexts],
        **({} if result.context_coverage is None else {"context_coverage": result.context_coverage}),
    }


PREDICTIONS_FILE = "predictions.jsonl"
PREVIOUS_PREDICTIONS_FILE = "predictions.previous.jsonl"
RUN_FILE = "run.json"
RUN_SECONDS_FIELD = "run_seconds"  # in each logged answer: the run's seconds so far, earlier parts included
# settings that change answers: a run may only be resumed with the same ones
ANSWER_SETTINGS = (
    "exam",
    "index",
    "model",
    "backend",
    "readers",
    "rotations",
    "retrieval",
    "candidates",
    "dense_engine",
    "passages",
    "context_tokens",
    "encoder",
    "encoder_tokens",
    "ensemble",
    "triage_readers",
    "triage_model",
    "triage_context_tokens",
    "triage_rotations",
    "escalate_margin",
    "average_stages",
    "context_coverage",
    "letter_prior",
    "adapter",
    "packed",
    "n_ctx",
)
# settings added since runs were first logged, and what a run.json without them was made with
ABSENT_SETTINGS = {"average_stages": False, "context_coverage": 0.0, "letter_prior": False}


class PredictionLog:
    """predictions.jsonl written as questions are answered, one flushed line each, so a stopped run
    keeps what it answered; run.json records the settings from the start. With `resume`, the answers
    already in `out` are kept (a line cut by the stop is dropped) if they were made with the same
    settings, and `earlier` says what the run takes over. A cascade that stopped before its main
    stage had finished leaves triage answers that may still deserve a re-read: those are `triaged`
    (kept, not answered again, but candidates for the main stage) rather than `previous`; so is every
    first-pass answer when the run divides by a letter prior (`refit_first_pass`), which is fitted
    over the whole pass. Each line records the seconds the run (its earlier parts included) had
    taken, so that a resumed cascade's budget counts them. Without `resume`, an earlier run's answers
    are moved aside to predictions.previous.jsonl, not lost."""

    def __init__(self, out: Path, settings: dict[str, object], resume: bool = False, refit_first_pass: bool = False):
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / PREDICTIONS_FILE
        self.previous: list[dict[str, object]] = []
        self.triaged: list[dict[str, object]] = []
        self.seconds_before = 0.0
        if resume and self.path.is_file():
            before = _check_same_settings(out / RUN_FILE, settings)
            records = _read_complete_records(self.path)
            stopped = before.get("status") == "running" or before.get("failure") is not None

            def taken_up(record: dict[str, object]) -> bool:
                return (stopped and _triage_only(record)) or (refit_first_pass and _first_pass_only(record))

            self.triaged = [r for r in records if taken_up(r)]
            self.previous = [r for r in records if not taken_up(r)]
            self.seconds_before = max((float(r.get(RUN_SECONDS_FIELD) or 0.0) for r in records), default=0.0)
            partial = self.path.with_name(PREDICTIONS_FILE + ".partial")
            partial.write_text("".join(map(_jsonl_line, records)), encoding="utf-8")
            partial.replace(self.path)  # the cut line goes; a stop now still leaves every earlier answer
            _write_running(out, settings)  # if this run stops too, the next resume must know it
        else:
            if self.path.is_file():
                self.path.replace(out / PREVIOUS_PREDICTIONS_FILE)
            _write_running(out, settings)
        self._started = time.perf_counter()
        self._handle = self.path.open("a", encoding="utf-8")

    @property
    def answered(self) -> frozenset[str]:
        return frozenset(str(record["id"]) for record in self.previous)

    def earlier(self, questions: Sequence[Question]) -> EarlierRun:
        """What a run asked `questions` takes over: the `triaged` answers among them as results; those
        of other questions (a smaller --limit) join `previous`, kept as they were logged."""
        by_id = {question.id: question for question in questions}
        self.previous += [record for record in self.triaged if str(record["id"]) not in by_id]
        self.triaged = [record for record in self.triaged if str(record["id"]) in by_id]
        readings = [(name, reading) for record in self.previous for name, reading in _order_readings(record).items()]
        return EarlierRun(
            self.answered,
            [result_from_record(r, by_id[str(r["id"])]) for r in self.triaged],
            readings,
            self.seconds_before,
        )

    def add(self, result: QuestionResult) -> None:
        self._write(_prediction_record(result))

    def _write(self, record: dict[str, object]) -> None:
        record[RUN_SECONDS_FIELD] = round(self.seconds_before + time.perf_counter() - self._started, 3)
        self._handle.write(_jsonl_line(record))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _write_running(out: Path, settings: dict[str, object]) -> None:
    (out / RUN_FILE).write_text(json.dumps({"settings": settings, "status": "running"}, indent=2) + "\n")


def _triage_only(record: dict[str, object]) -> bool:
    readers = record.get("readers") or {}
    return bool(readers) and all(str(name).endswith(TRIAGE_SUFFIX) for name in readers)


def _first_pass_only(record: dict[str, object]) -> bool:
    """Read by a first pass alone: a triage answer, or any answer of a run without a cascade (a
    re-read cascade answer holds readers of both stages)."""
    readers = record.get("readers") or {}
    return bool(readers) and len({str(name).endswith(TRIAGE_SUFFIX) for name in readers}) == 1


def _order_readings(record: dict[str, object]) -> dict[str, OrderReading]:
    return {
        name: OrderReading(int(o["first"]), tuple(map(tuple, o["logprobs"])))
        for name, o in (record.get("orders") or {}).items()
    }


def result_from_record(record: dict[str, object], question: Question) -> QuestionResult:
    """A logged answer back as a result (the inverse of `_prediction_record`; a context's text is
    rebuilt from its logged passages, whole)."""
    orders = _order_readings(record)
    outputs = [
        ReaderOutput(question.id, name, probabilities, orders=orders.get(name))
        for name, probabilities in record["readers"].items()
    ]
    contexts = []
    for evidence in record.get("contexts", []):
        hits = [
            Hit(Passage(p["id"], "", p["title"], p["text"]), p["score"], rank)
            for rank, p in enumerate(evidence["passages"])
        ]
        text = "\n\n".join(render_passage(hit, hit.passage.text) for hit in hits)
        contexts.append(
            RetrievedContext(
                evidence["retrieval"], hits, Context(text, tuple(hit.passage.id for hit in hits), evidence["tokens"])
            )
        )
    prediction = Prediction(
        question.id,
        tuple(record["ranking"]),
        record["probabilities"],
        record.get("confidence"),
        bool(record.get("calibrated")),
    )
    coverage = record.get("context_coverage")
    return QuestionResult(question, prediction, outputs, contexts, None if coverage is None else float(coverage))


def _jsonl_line(record: dict[str, object]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _read_complete_records(path: Path) -> list[dict[str, object]]:
    records = []
    for line in path.read_bytes().splitlines():  # bytes: a stop may cut a line inside a character
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            break  # the line the stop cut; everything after it is missing too
    return latest_per_id(records)


def _check_same_settings(run_file: Path, settings: dict[str, object]) -> dict[str, object]:
    """The earlier run's run.json, if it was made with the same settings."""
    if not run_file.is_file():
        raise OpenbookError(
            f"{run_file.parent} has answers but no {RUN_FILE} saying how they were made; "
            "cannot resume them safely: choose another --out"
        )
    try:
        earlier = json.loads(run_file.read_text())
    except json.JSONDecodeError as error:
        raise OpenbookError(f"{run_file}: not valid JSON ({error}); cannot resume safely") from None
    before = {key: value for key, value in ABSENT_SETTINGS.items() if key in settings} | earlier.get("settings", {})
    changed = [key for key in ANSWER_SETTINGS if key in before and before[key] != settings.get(key)]
    if changed:
        details = ", ".join(f"{key} {before[key]!r} -> {settings.get(key)!r}" for key in changed)
        raise OpenbookError(
            f"{run_file.parent} holds a run with other settings ({details}); "
            "resume with the same settings or choose another --out"
        )
    return earlier


def write_run(
    run: Run, out: Path, previous: list[dict[str, object]] | tuple = (), seconds_before: float = 0.0
) -> dict[str, object]:
    """Write the run's files, predictions.jsonl whole (a `PredictionLog` wrote it line by line while
    answering); `previous` are the records of questions answered by an earlier, resumed run, which
    took `seconds_before`. Return the metrics (empty when the exam has no answers)."""
    out.mkdir(parents=True, exist_ok=True)
    run_seconds = round(seconds_before + run.seconds.get("total", 0.0), 3)
    with (out / PREDICTIONS_FILE).open("w", encoding="utf-8") as handle:
        for record in [
            *previous,
            *({**_prediction_record(result), RUN_SECONDS_FIELD: run_seconds} for result in run.results),
        ]:
            handle.write(_jsonl_line(record))
    earlier = [
        Prediction(
            str(r["id"]),
            tuple(r["ranking"]),
            r["probabilities"],
            r.get("confidence", max(r["probabilities"].values())),
            bool(r.get("calibrated")),
        )
        for r in previous
    ]
    write_submission([*earlier, *(r.prediction for r in run.results)], out / "submission.csv")
    provenance = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": run.settings,
        "versions": library_versions(("llama_cpp_python", "tantivy")),
    }
    status = {
        "questions_answered": len(run.results) + len(earlier),
        "answered_by_earlier_runs": len(earlier),
        "failure": run.failure,
    }
    (out / RUN_FILE).write_text(json.dumps({**provenance, **status, "seconds": run.seconds}, indent=2) + "\n")
    answers = {str(r["id"]): r["answer"] for r in previous if r.get("answer")}
    answers |= {r.question.id: r.question.answer for r in run.results if r.question.answer}
    scored = [p for p in [*earlier, *(r.prediction for r in run.results)] if p.question_id in answers]
    if not scored:
        return {}
    scores = score_rankings((p.ranking, answers[p.question_id]) for p in scored)
    calibration = {
        "ece": expected_calibration_error(
            [p.confidence or 0.0 for p in scored], [p.ranking[0] == answers[p.question_id] for p in scored]
        ),
        "calibrated": all(p.calibrated for p in scored),
        "bins": ECE_BINS,
    }
    metrics = {
        "map@3": scores.map_at_3,
        "accuracy": scores.accuracy,
        "count": scores.count,
        "confidence": calibration,
        "complete": run.failure is None,
        "seconds": run.seconds,
        **provenance,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
