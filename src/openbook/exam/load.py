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
from typing import cast

from openbook.errors import InputError
from openbook.records import LETTERS, Question

REQUIRED_COLUMNS = ("id", "prompt", "A", "B")
KNOWN_COLUMNS = frozenset(("id", "prompt", "answer", *LETTERS))


def read_exam(path: str | Path) -> list[Question]:
    """Load every question of an exam file (`.csv`, or `.jsonl`/`.json`: JSON lines, or one JSON array
    of objects), or raise `InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "exam file not found")
    text = _decode(path, path.read_bytes())
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = _json_array_rows(path, text) if text.lstrip().startswith("[") else _jsonl_rows(path, text)
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
    for row in reader:
        # fields beyond the header: a list under the key None (typeshed types every value as str)
        surplus = cast("list[str]", row.get(None) or [])
        values = [v for v in row.values() if isinstance(v, str)] + surplus
        # line_num is the row's last physical line (blank lines are skipped); quoted newlines lead back to its first
        line = reader.line_num - sum(value.count("\n") for value in values)
        fields = len(columns) + len(surplus) - sum(value is None for value in row.values())
        if fields != len(columns):
            raise InputError(path, f"row has {fields} fields, header has {len(columns)}", line)
        yield line, row


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    # "\n" only: JSON strings may hold U+2028, U+0085 and other characters str.splitlines breaks at
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise InputError(path, f"invalid JSON: {error.msg}", line) from None
        yield line, _json_row(path, line, record, "each line must be a JSON object")


def _json_array_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """A JSON array of question objects, each located by the line it starts on."""
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        position = _skip_space(text, position)
        if text.startswith("]", position):
            return
        line = text.count("\n", 0, position) + 1
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise InputError(path, f"invalid JSON: {error.msg}", error.lineno) from None
        yield line, _json_row(path, line, record, "each item of the array must be a JSON object")
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position += 1
        elif not text.startswith("]", position):
            raise InputError(path, "invalid JSON: expected ',' or ']' after an item", text.count("\n", 0, position) + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _json_row(path: Path, line: int, record: object, not_object: str) -> dict[str, str]:
    if not isinstance(record, dict):
        raise InputError(path, not_object, line)
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise InputError(path, f"missing field(s) {', '.join(missing)}", line)
    return {key: "" if value is None else str(value) for key, value in record.items()}


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
