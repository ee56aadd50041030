"""Kaggle submissions: `id,prediction` with three space-separated letters, best first."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from openbook.errors import InputError
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
    """Question id -> ranked letters, validated like an exam."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "submission file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(path, f"undecodable bytes (not UTF-8) at byte {error.start}") from None
    rankings: dict[str, tuple[str, ...]] = {}
    with io.StringIO(text, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"id", "prediction"} <= set(reader.fieldnames):
            raise InputError(path, "a submission needs the columns id,prediction", 1)
        for row in reader:
            line = reader.line_num
            letters = tuple((row["prediction"] or "").split())
            if not letters or any(letter not in LETTERS for letter in letters):
                raise InputError(path, f"prediction {row['prediction']!r} is not space-separated letters A-E", line)
            if row["id"] in rankings:
                raise InputError(path, f"duplicate id {row['id']!r}", line)
            rankings[row["id"]] = letters
    return rankings
