"""What an ensemble sees of one question: each reader's probabilities and simple retrieval features,
built either from a live answer (`QuestionResult`) or from a finished run's predictions.jsonl."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openbook.errors import OpenbookError
from openbook.records import Question
from openbook.retrieve.context import word_coverage


@dataclass(frozen=True)
class ScoredQuestion:
    id: str
    letters: tuple[str, ...]
    answer: str | None
    readers: dict[str, np.ndarray]  # reader -> probabilities in `letters` order
    coverage: np.ndarray  # per option: share of its words found in the retrieved context


def scored_question(
    question: Question, readers: Mapping[str, Mapping[str, float]], context_text: str
) -> ScoredQuestion:
    letters = question.letters
    return ScoredQuestion(
        id=question.id,
        letters=letters,
        answer=question.answer,
        readers={
            name: np.array([float(probabilities.get(letter, 0.0)) for letter in letters])
            for name, probabilities in readers.items()
        },
        coverage=np.array([word_coverage(question.options[letter], context_text) for letter in letters]),
    )


def latest_per_id(records: list[dict[str, object]]) -> list[dict[str, object]]:
    """One record per question, the last written: a cascade logs a question again when it re-reads it."""
    latest = {str(record["id"]): record for record in records}
    return list(latest.values())


def predictions_path(run: Path) -> Path:
    """A run's predictions.jsonl: in its folder, or the file itself."""
    path = run / "predictions.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise OpenbookError(
            f"{run}: not a run of `openbook answer`/`eval` (no {path.name}); pass its folder or its predictions.jsonl"
        )
    return path


def read_predictions(path: Path) -> list[dict[str, object]]:
    """The records of a predictions.jsonl (the last per question, as a stopped cascade may have logged a
    question twice), with the file and line named on a broken one."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise OpenbookError(f"{path}, line {number}: not JSON ({error.msg})") from None
            if not isinstance(record, dict) or "id" not in record or "readers" not in record:
                raise OpenbookError(f"{path}, line {number}: not an openbook prediction (needs id and readers)")
            readers = record["readers"]
            if not isinstance(readers, dict) or not all(map(_probabilities, readers.values())):
                raise OpenbookError(f"{path}, line {number}: its readers are not letter -> probability tables")
            if "probabilities" in record and not _probabilities(record["probabilities"]):
                raise OpenbookError(f"{path}, line {number}: its probabilities are not a letter -> probability table")
            records.append(record)
    return latest_per_id(records)


def _probabilities(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in value.values()
    )


def context_text(record: Mapping[str, object]) -> str:
    return "\n".join(p["text"] for c in record.get("contexts", []) for p in c.get("passages", []))


def scored_from_runs(runs: Sequence[Path], questions: Sequence[Question], final: bool = False) -> list[ScoredQuestion]:
    """Join several runs' predictions.jsonl by question id: readers of run i are named `run-folder/reader`
    when more than one run is given. `final`: each run is one reader instead, its final answers
    named `run-folder` (whole runs combined, e.g. a cascade's with an encoder's: `openbook ensemble
    combine`). Questions missing from any run are left out."""
    by_id = {q.id: q for q in questions}
    merged: dict[str, dict[str, Mapping[str, float]]] = {}
    contexts: dict[str, str] = {}
    present: list[set[str]] = []
    paths = [predictions_path(run) for run in runs]
    labels = [path.parent.name for path in paths]
    if len(runs) > 1 and len(set(labels)) < len(labels):
        raise OpenbookError(
            f"runs {', '.join(map(str, runs))} share folder names ({', '.join(sorted(labels))}), "
            "which name their readers: give each run its own folder name"
        )
    for path in paths:
        ids = set()
        for record in read_predictions(path):
            qid = str(record["id"])
            if qid not in by_id:
                raise OpenbookError(f"{path}: question {qid!r} is not in the exam")
            ids.add(qid)
            if final:
                if not isinstance(record.get("probabilities"), dict):
                    raise OpenbookError(f"{path}: question {qid!r} has no final probabilities")
                read = {path.parent.name: record["probabilities"]}
            else:
                read = {
                    f"{path.parent.name}/{reader}" if len(runs) > 1 else reader: probabilities
                    for reader, probabilities in record["readers"].items()
                }
            merged.setdefault(qid, {}).update(read)
            contexts[qid] = contexts.get(qid, "") + "\n" + context_text(record)
        present.append(ids)
    common = set.intersection(*present) if present else set()
    return [scored_question(by_id[qid], merged[qid], contexts[qid]) for qid in by_id if qid in common]
