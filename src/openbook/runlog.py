"""predictions.jsonl: the one log of a run's answers, written as questions are answered and read back
to resume a run, fit an ensemble or combine runs.

Each answer is one JSON line, flushed as soon as it is made, so a stopped run keeps what it answered;
a cascade logs a question again when it re-reads it, and the last line of a question wins. One policy
for a damaged line wherever the log is read: the file's last line, cut by a stop in mid-write, is
dropped; a damaged line anywhere else is an error naming the file and line (the log was edited or
corrupted, and guessing would mix runs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openbook.errors import InputError, OpenbookError
from openbook.files import write_atomically
from openbook.records import (
    NO_CONTEXT,
    TRIAGE_SUFFIX,
    Context,
    EarlierRun,
    Hit,
    OrderReading,
    Passage,
    Prediction,
    Question,
    QuestionResult,
    ReaderOutput,
    Reread,
    RereadKind,
    RetrievedContext,
    submission_letters,
)

PREDICTIONS_FILE = "predictions.jsonl"
PREVIOUS_PREDICTIONS_FILE = "predictions.previous.jsonl"
RUN_FILE = "run.json"
RUN_SECONDS_FIELD = "run_seconds"  # in each logged answer: the run's seconds so far, earlier parts included
# settings added since runs were first logged, and what a run.json without them was made with
ABSENT_SETTINGS = {"average_stages": False, "context_coverage": 0.0, "letter_prior": False}

Record = dict[str, Any]


def record_of(result: QuestionResult) -> Record:
    """A result as predictions.jsonl logs it."""
    return {
        "id": result.question.id,
        "prediction": submission_letters(result.prediction.ranking),
        "ranking": list(result.prediction.ranking),
        "probabilities": result.prediction.probabilities,
        "confidence": result.prediction.confidence,
        "calibrated": result.prediction.calibrated,
        "answer": result.question.answer,
        "stage": result.stage,
        "readers": {o.reader: o.probabilities for o in result.outputs},
        # letter readers' uncalibrated readings, so a resumed run can estimate the letter prior again
        "orders": {
            o.reader: {"first": o.orders.first_order, "logprobs": o.orders.logprobs}
            for o in result.outputs
            if o.orders is not None
        },
        "contexts": [evidence_record(retrieved) for retrieved in result.contexts],
        "seconds": round(result.seconds, 3),
        **({} if result.reread is None else {"reread": result.reread.kind, "context_coverage": result.reread.coverage}),
    }


def evidence_record(retrieved: RetrievedContext) -> Record:
    """A context as the log keeps it: its pipeline, size, what the reader read, and its passages whole."""
    hits = {hit.passage.id: hit for hit in retrieved.hits}
    return {
        "retrieval": retrieved.retrieval,
        "tokens": retrieved.context.tokens,
        "read": retrieved.context.text,
        "passages": [
            {"id": pid, "title": hits[pid].passage.title, "score": hits[pid].score, "text": hits[pid].passage.text}
            for pid in retrieved.context.passage_ids
        ],
    }


def order_readings(record: Mapping[str, Any]) -> dict[str, OrderReading]:
    return {
        name: OrderReading(int(o["first"]), tuple(map(tuple, o["logprobs"])))
        for name, o in (record.get("orders") or {}).items()
    }


def result_of(record: Mapping[str, Any], question: Question) -> QuestionResult:
    """A logged answer back as a result (the inverse of `record_of`; a context's text is what was read,
    or, in a log that does not keep it, rebuilt from its logged passages, whole)."""
    orders = order_readings(record)
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
        text = evidence.get("read") or "\n\n".join(hit.passage.in_context() for hit in hits)
        contexts.append(
            RetrievedContext(
                evidence["retrieval"], hits, Context(text, tuple(hit.passage.id for hit in hits), evidence["tokens"])
            )
        )
    prediction = prediction_of(record)
    coverage = record.get("context_coverage")
    reread = None
    if record.get("reread") or coverage is not None:
        reread = Reread(record.get("reread") or _reread_kind_of(record), None if coverage is None else float(coverage))
    return QuestionResult(question, prediction, outputs, contexts, reread, float(record.get("seconds") or 0.0))


def _reread_kind_of(record: Mapping[str, Any]) -> RereadKind:
    """How a log that does not name its re-read kind re-read a question: in more orders without
    context where it holds a reading without context ("…@none"), else with its context."""
    suffix = "@" + NO_CONTEXT.retrieval
    return "orders" if any(str(name).endswith(suffix) for name in record["readers"]) else "context"


def prediction_of(record: Mapping[str, Any]) -> Prediction:
    probabilities = record["probabilities"]
    confidence = record.get("confidence", max(probabilities.values()))
    return Prediction(
        str(record["id"]), tuple(record["ranking"]), probabilities, confidence, bool(record.get("calibrated"))
    )


def latest_per_id(records: Sequence[Record]) -> list[Record]:
    """One record per question, the last written: a cascade logs a question again when it re-reads it."""
    return list({str(record["id"]): record for record in records}.values())


def predictions_path(run: Path) -> Path:
    """A run's predictions.jsonl: in its folder, or the file itself."""
    path = run / PREDICTIONS_FILE if run.is_dir() else run
    if not path.is_file():
        raise OpenbookError(
            f"{run}: not a run of `openbook answer`/`eval` (no {path.name}); pass its folder or its predictions.jsonl"
        )
    return path


def read_records(path: Path) -> list[Record]:
    """The answers a predictions.jsonl holds, the last per question. A last line cut by a stop is
    dropped; any other line that is not an openbook prediction is an error naming it."""
    lines = Path(path).read_bytes().splitlines()  # bytes: a stop may cut a line inside a character
    last = max((n for n, line in enumerate(lines) if line.strip()), default=-1)
    records = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            if number == last:
                break  # the line a stop cut
            raise InputError(
                path, f"damaged line ({error}); only the last line may be cut by a stop", number + 1
            ) from None
        problem = _record_problem(record)
        if problem:
            raise InputError(path, problem, number + 1)
        records.append(record)
    return latest_per_id(records)


def _record_problem(record: object) -> str | None:
    if not isinstance(record, dict) or "id" not in record or "readers" not in record:
        return "not an openbook prediction (needs id and readers)"
    readers = record["readers"]
    if not isinstance(readers, dict) or not all(map(_is_probability_table, readers.values())):
        return "its readers are not letter -> probability tables"
    if "probabilities" in record and not _is_probability_table(record["probabilities"]):
        return "its probabilities are not a letter -> probability table"
    return None


def _is_probability_table(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(p, int | float) and not isinstance(p, bool) for p in value.values()
    )


def jsonl_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def write_running(out: Path, header: Mapping[str, Any]) -> None:
    """run.json while the run goes on: a resumed run reads its settings, and `status` says it stopped
    before finishing if it is still there."""
    (out / RUN_FILE).write_text(json.dumps({**header, "status": "running"}, indent=2) + "\n")


class RunLog:
    """predictions.jsonl written as questions are answered, one flushed line each; run.json records
    the run's settings and plan (`header`) from the start.

    With `resume`, the answers already in `out` are kept if they were made with the same
    `answer_settings` (those that change answers). A cascade that stopped before its second stage had
    finished leaves first-pass answers that may still deserve a re-read: those are taken up again
    (`earlier().first_pass`) rather than kept as final; so is every first-pass answer when the run
    divides by a letter prior (`refit_first_pass`), which is fitted over the whole pass. Each line
    records the seconds the run (its earlier parts included) had taken, so that a resumed cascade's
    budget counts them. Without `resume`, an earlier run's answers are moved aside to
    predictions.previous.jsonl, not lost."""

    def __init__(
        self,
        out: Path,
        header: Mapping[str, Any],
        answer_settings: Mapping[str, Any],
        resume: bool = False,
        refit_first_pass: bool = False,
    ):
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.path = out / PREDICTIONS_FILE
        self.previous: list[Record] = []
        self.triaged: list[Record] = []
        self.seconds_before = 0.0
        if resume and self.path.is_file():
            before = _earlier_run_file(out / RUN_FILE, answer_settings)
            records = read_records(self.path)
            stopped = before.get("status") == "running" or before.get("failure") is not None

            def taken_up(record: Record) -> bool:
                return (stopped and _triage_only(record)) or (refit_first_pass and _first_pass_only(record))

            self.triaged = [r for r in records if taken_up(r)]
            self.previous = [r for r in records if not taken_up(r)]
            self.seconds_before = max((float(r.get(RUN_SECONDS_FIELD) or 0.0) for r in records), default=0.0)
            # the cut line goes; a stop now still leaves every earlier answer
            write_atomically(self.path, "".join(map(jsonl_line, records)))
        elif self.path.is_file():
            self.path.replace(out / PREVIOUS_PREDICTIONS_FILE)
        write_running(out, header)  # if this run stops too, the next resume must know it
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
        readings = [(name, reading) for record in self.previous for name, reading in order_readings(record).items()]
        first_pass = [result_of(r, by_id[str(r["id"])]) for r in self.triaged]
        return EarlierRun(self.answered, first_pass, readings, self.seconds_before)

    def add(self, result: QuestionResult) -> None:
        record = record_of(result)
        record[RUN_SECONDS_FIELD] = round(self.seconds_before + time.perf_counter() - self._started, 3)
        self._handle.write(jsonl_line(record))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _triage_only(record: Record) -> bool:
    readers = record.get("readers") or {}
    return bool(readers) and all(str(name).endswith(TRIAGE_SUFFIX) for name in readers)


def _first_pass_only(record: Record) -> bool:
    """Read by a first pass alone: a triage answer, or any answer of a run without a cascade (a
    re-read cascade answer holds readers of both stages)."""
    readers = record.get("readers") or {}
    return bool(readers) and len({str(name).endswith(TRIAGE_SUFFIX) for name in readers}) == 1


def _earlier_run_file(run_file: Path, answer_settings: Mapping[str, Any]) -> Record:
    """The earlier run's run.json, if it was made with the same settings."""
    if not run_file.is_file():
        raise OpenbookError(
            f"{run_file.parent} has answers but no {RUN_FILE} saying how they were made; "
            "cannot resume them safely: choose another --out"
        )
    try:
        earlier = json.loads(run_file.read_text())
    except json.JSONDecodeError as error:
        raise InputError(run_file, f"not valid JSON ({error}); cannot resume safely") from None
    settings = {key: value for key, value in ABSENT_SETTINGS.items() if key in answer_settings}
    settings |= earlier.get("settings", {})
    changed = [key for key in answer_settings if key in settings and settings[key] != answer_settings[key]]
    if changed:
        details = ", ".join(f"{key} {settings[key]!r} -> {answer_settings[key]!r}" for key in changed)
        raise OpenbookError(
            f"{run_file.parent} holds a run with other settings ({details}); "
            "resume with the same settings or choose another --out"
        )
    return earlier
