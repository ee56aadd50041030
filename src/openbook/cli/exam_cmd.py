"""`openbook check` and `openbook score`: validate an exam; score a submission against it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from openbook.cli.common import reports_errors, results
from openbook.errors import InputError
from openbook.evaluate.submission import read_submission_lines
from openbook.exam import read_exam
from openbook.metrics import score_rankings
from openbook.progress import console


@reports_errors
def check(exam: Annotated[Path, typer.Argument(help="Exam CSV or JSONL.")]) -> None:
    """Validate an exam and summarise it (questions, options per question, answers, extra columns)."""
    questions = read_exam(exam)
    option_counts = Counter(len(q.options) for q in questions)
    answered = sum(q.answer is not None for q in questions)
    extra = sorted({key for q in questions for key in q.extra})
    results.print(
        f"{exam}: {len(questions)} questions, options per question "
        f"{dict(sorted(option_counts.items()))}, {answered} with answers, "
        f"extra columns: {', '.join(extra) or 'none'}",
        highlight=False,
    )


@reports_errors
def score(
    submission: Annotated[Path, typer.Argument(help="submission.csv (id,prediction).")],
    exam: Annotated[Path, typer.Argument(help="The exam with its answers.")],
) -> None:
    """MAP@3 and accuracy of a submission (JSON on stdout)."""
    lines = read_submission_lines(submission)
    rankings = {qid: letters for qid, (letters, _) in lines.items()}
    exam_questions = read_exam(exam)
    questions = [q for q in exam_questions if q.answer is not None]
    if not questions:
        raise InputError(exam, "no question has an answer to score against")
    missing = [q.id for q in questions if q.id not in rankings]
    if missing:
        raise InputError(submission, f"{len(missing)} answered question(s) have no prediction, e.g. {missing[:3]}")
    known = {q.id for q in exam_questions}
    extra = [(qid, line) for qid, (_, line) in lines.items() if qid not in known]
    if extra:
        examples = ", ".join(f"{qid!r} (line {line})" for qid, line in extra[:3])
        console.print(
            f"[yellow]warning:[/] {escape(str(submission))}: {len(extra)} id(s) not in {escape(str(exam))}, "
            f"not scored, e.g. {escape(examples)}",
            highlight=False,
            soft_wrap=True,
        )
    scores = score_rankings((rankings[q.id], q.answer) for q in questions if q.answer is not None)
    results.print_json(json.dumps({"map@3": scores.map_at_3, "accuracy": scores.accuracy, "count": scores.count}))
