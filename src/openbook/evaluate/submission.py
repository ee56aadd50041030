"""Kaggle submissions: `id,prediction` with three space-separated letters, best first.

Read by the exam's rules (`openbook.exam.load`): strict CSV, trimmed column names and ids, letters
in either case, every problem located by file, line and field.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from openbook.errors import InputError
from openbook.exam.load import decode, read_csv_table
from openbook.records import LETTERS, Prediction, submission_letters


def write_submission(predictions: Iterable[Prediction], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["id", "prediction"])
        for prediction in predictions:
            writer.writerow([prediction.question_id, submission_letters(prediction.ranking)])
    return path


def read_submission(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Question id -> ranked letters (upper case), validated like an exam."""
    return {qid: letters for qid, (letters, _) in read_submission_lines(path).items()}


def read_submission_lines(path: str | Path) -> dict[str, tuple[tuple[str, ...], int]]:
    """Question id -> (ranked letters, the line they are on)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "submission file not found")
    text = decode(path, path.read_bytes())
    if text.lstrip().startswith(("{", "[")):
        raise InputError(path, "a submission is a CSV file with the columns id,prediction; this one looks like JSON", 1)
    try:
        columns, rows = read_csv_table(path, text, ("id", "prediction"))
    except InputError as error:
        if error.line == 1 and error.problem.startswith("missing column"):
            raise InputError(path, f"a submission needs the columns id,prediction; {error.problem}", 1) from None
        raise
    rankings: dict[str, tuple[tuple[str, ...], int]] = {}
    try:
        for line, row in rows:
            for key, value in row.items():
                if "\x00" in value:
                    raise InputError(path, f"NUL character (\\0) in field {key!r}", line)
            qid = row["id"].strip()
            if not qid:
                raise InputError(path, "empty id", line)
            letters = tuple(row["prediction"].upper().split())
            if not letters or any(letter not in LETTERS for letter in letters):
                raise InputError(path, f"prediction {row['prediction']!r} is not space-separated letters A-E", line)
            if qid in rankings:
                raise InputError(path, f"duplicate id {qid!r} (first seen on line {rankings[qid][1]})", line)
            rankings[qid] = (letters, line)
    except InputError as error:
        surplus = re.match(r"row has (\d+) fields", error.problem)
        if surplus and int(surplus[1]) > len(columns) and columns[-1] == "prediction":
            hint = "; letters of a prediction are separated by spaces, not commas"
            raise InputError(path, error.problem + hint, error.line) from None
        raise
    return rankings
