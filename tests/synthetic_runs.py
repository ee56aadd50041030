"""Synthetic questions and runs for the ensemble tests: readers of known quality, written as the run
folders `openbook answer` leaves (run.json, predictions.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from openbook.ensemble import ScoredQuestion
from openbook.records import Question

LETTERS = ("A", "B", "C", "D", "E")


def synthetic_questions(count: int, seed: int = 0) -> list[ScoredQuestion]:
    """`good` points at the answer more often than not; `noise` is random; coverage is uninformative."""
    rng = np.random.default_rng(seed)
    questions = []
    for i in range(count):
        answer = int(rng.integers(5))
        good = rng.normal(0, 1, 5)
        good[answer] += 1.5
        noise = rng.normal(0, 1, 5)
        questions.append(
            ScoredQuestion(
                id=str(i),
                letters=LETTERS,
                answer=LETTERS[answer],
                readers={"good": np.exp(good) / np.exp(good).sum(), "noise": np.exp(noise) / np.exp(noise).sum()},
                coverage=rng.uniform(0, 1, 5),
            )
        )
    return questions


def exam_of_synthetic(synthetic: list[ScoredQuestion], path: Path) -> tuple[list[Question], Path]:
    """The synthetic questions as an exam CSV (each option's text names its letter and question)."""
    questions = [
        Question(q.id, f"question {q.id}", {letter: f"option {letter}{q.id}" for letter in LETTERS}, q.answer)
        for q in synthetic
    ]
    path.write_text(
        "id,prompt,A,B,C,D,E,answer\n"
        + "".join(f"{q.id},{q.prompt},{','.join(q.options.values())},{q.answer}\n" for q in questions)
    )
    return questions, path


def write_run(folder, questions: list[Question], readers: dict[str, list[np.ndarray]], exam):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"settings": {"exam": str(exam)}}))
    with (folder / "predictions.jsonl").open("w") as handle:
        for i, question in enumerate(questions):
            record = {
                "id": question.id,
                "answer": question.answer,
                "readers": {name: dict(zip(question.letters, map(float, rows[i]))) for name, rows in readers.items()},
                "contexts": [{"passages": [{"text": f"{question.options['A']} is right"}]}],
            }
            handle.write(json.dumps(record) + "\n")


def write_final_run(folder, questions: list[Question], probabilities: list[np.ndarray], exam) -> None:
    """A finished run's predictions.jsonl: final probabilities, and a reader that `--final` ignores."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"settings": {"exam": str(exam)}}))
    with (folder / "predictions.jsonl").open("w") as handle:
        for question, row in zip(questions, probabilities):
            final = dict(zip(question.letters, map(float, row)))
            handle.write(
                json.dumps(
                    {
                        "id": question.id,
                        "probabilities": final,
                        "readers": {"letter@triage": {letter: 0.2 for letter in question.letters}},
                    }
                )
                + "\n"
            )


def write_runs(folder, exam, count: int = 30) -> list:
    """Two finished runs of one exam: `good` points at the answer, `noise` does not."""
    import random

    rng = random.Random(7)
    letters = "ABCD"
    answers = [rng.choice(letters) for _ in range(count)]
    exam.write_text(
        "id,prompt,A,B,C,D,answer\n" + "".join(f"{i},q{i},a{i},b{i},c{i},d{i},{a}\n" for i, a in enumerate(answers))
    )
    runs = []
    for name in ("good", "noise"):
        run = folder / name
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"settings": {"exam": str(exam)}}))
        with (run / "predictions.jsonl").open("w") as handle:
            for i, answer in enumerate(answers):
                weights = {x: rng.random() + (2.0 if name == "good" and x == answer else 0.0) for x in letters}
                total = sum(weights.values())
                probabilities = {x: w / total for x, w in weights.items()}
                record = {"id": str(i), "answer": answer, "probabilities": probabilities}
                handle.write(json.dumps({**record, "readers": {"letter": probabilities}}) + "\n")
        runs.append(run)
    return runs
