"""Read and validate exams in the Kaggle layout `id,prompt,A,B,C,D,E[,answer]` (CSV or JSONL).

An empty option is absent (ARC, SciQ and MMLU have 3-4 options); present options keep their letters.
Every problem is reported with the file and line it comes from.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from openbook.errors import InputError
from openbook.types import LETTERS, Question

REQUIRED_COLUMNS = ("id", "prompt", "A", "B")
KNOWN_COLUMNS = frozenset(("id", "prompt", "answer", *LETTERS))


def read_exam(path: str | Path) -> list[Question]:
    """Load every question of an exam file (`.csv` or `.jsonl`/`.json`), or raise `InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "exam file not found")
    text = _decode(path, path.read_bytes())
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = _jsonl_rows(path, text)
    else:
        rows = _csv_rows(path, text)
    questions: list[Question] = []
    first_line_of: dict[str, int] = {}
    for line, row in rows:
        question = _question_from_row(path, line, row)
        if question.id in first_line_of:
            raise InputError(
                path, f"duplicate id {question.id!r} (first seen on line {first_line_of[question.id]})", line
            )
        first_line_of[question.id] = line
        questions.append(question)
    if not questions:
        raise InputError(path, "the exam has no questions")
    return questions


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(path, f"undecodable bytes (not UTF-8) at byte {error.start}", line) from None


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(2**31 - 1)  # source passages in `context` columns can be long
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'none'}", 1)
    next_line = 2
    for row in reader:
        line, next_line = next_line, reader.line_num + 1
        if None in row:
            raise InputError(path, f"row has {len(columns) + len(row[None])} fields, header has {len(columns)}", line)
        yield line, row


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise InputError(path, f"invalid JSON: {error.msg}", line) from None
        if not isinstance(record, dict):
            raise InputError(path, "each line must be a JSON object", line)
        missing = [c for c in REQUIRED_COLUMNS if c not in record]
        if missing:
            raise InputError(path, f"missing field(s) {', '.join(missing)}", line)
        yield line, {key: "" if value is None else str(value) for key, value in record.items()}


def _question_from_row(path: Path, line: int, row: Mapping[str, str]) -> Question:
    qid = (row.get("id") or "").strip()
    if not qid:
        raise InputError(path, "empty id", line)
    prompt = (row.get("prompt") or "").strip()
    if not prompt:
        raise InputError(path, f"empty prompt for question {qid!r}", line)
    options = {letter: row[letter].strip() for letter in LETTERS if (row.get(letter) or "").strip()}
    if len(options) < 2:
        raise InputError(path, f"question {qid!r} has {len(options)} option(s); at least 2 are needed", line)
    answer = (row.get("answer") or "").strip().upper() or None
    if answer is not None and answer not in options:
        raise InputError(
            path, f"answer {answer!r} of question {qid!r} is not one of its options {', '.join(options)}", line
        )
    extra = {key: value for key, value in row.items() if key not in KNOWN_COLUMNS and key is not None}
    return Question(id=qid, prompt=prompt, options=options, answer=answer, extra=extra)
