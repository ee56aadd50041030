"""What an ensemble sees of one question: each reader's probabilities and simple retrieval features,
built either from a live answer or from a finished run's predictions.jsonl (`openbook.runlog`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openbook.errors import OpenbookError
from openbook.records import Question
from openbook.retrieve.context import word_coverage
from openbook.runlog import predictions_path, read_records


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


def context_text(record: Mapping[str, Any]) -> str:
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
        for record in read_records(path):
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
