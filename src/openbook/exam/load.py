"""Read and validate exams in the Kaggle layout `id,prompt,A,B,C,D,E[,answer]` (CSV or JSONL).

An empty option is absent (ARC, SciQ and MMLU have 3-4 options); present options keep their letters.
Every problem is reported with the file and line it comes from, and the field where there is one.
Nothing is guessed: a duplicated column, a NUL character, a quote left open, a prompt or option that
is not a string in JSON, are errors rather than a silently different exam. Letters (answers here,
predictions in submissions) are read without regard to case; ids and values are trimmed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from openbook.errors import InputError
from openbook.records import LETTERS, Question

REQUIRED_COLUMNS = ("id", "prompt", "A", "B")
KNOWN_COLUMNS = frozenset(("id", "prompt", "answer", *LETTERS))
STRING_FIELDS = ("prompt", *LETTERS, "answer")  # in JSON: a string, or null where the field may be empty
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line for csv's line_num (io.StringIO(newline=""))


def read_exam(path: str | Path) -> list[Question]:
    """Load every question of an exam file (`.csv`, or `.jsonl`/`.json`: JSON lines, or one JSON array
    of objects), or raise `InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "exam file not found")
    text = decode(path, path.read_bytes())
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        _refuse_raw_nul(path, text)
        rows = _json_array_rows(path, text) if text.lstrip().startswith("[") else _jsonl_rows(path, text)
    else:
        rows = _csv_exam_rows(path, text)
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


def decode(path: Path, data: bytes) -> str:
    """UTF-8 text (a leading BOM dropped), or an error naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(path, f"undecodable bytes (not UTF-8) at byte {error.start}", line) from None


def read_csv_table(
    path: Path, text: str, required: tuple[str, ...]
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header (names trimmed) and the rows of a CSV file, each with the line it starts on, as
    {column: value}. Refused, located: a missing, duplicated or NUL-holding column name, a row whose
    field count differs from the header's, a value in a column without a name, text after a closing
    quote, and a quote never closed (named by the line where it opens)."""
    csv.field_size_limit(2**31 - 1)  # source passages in `context` columns can be long
    records = _csv_records(path, text)
    first = next(records, None)
    columns = [] if first is None else [name.strip() for name in first[1]]
    if any("\x00" in name for name in columns):
        raise InputError(path, "NUL character (\\0) in the header (is the file UTF-16? save it as UTF-8)", 1)
    seen: dict[str, int] = {}
    for number, name in enumerate(columns, start=1):
        if name and name in seen:
            raise InputError(path, f"column {name!r} appears twice (columns {seen[name]} and {number})", 1)
        seen[name] = number
    missing = [c for c in required if c not in columns]
    if missing:
        found = ", ".join(name if name.isprintable() else repr(name) for name in columns) or "none"
        raise InputError(path, f"missing column(s) {', '.join(missing)}; found {found}", 1)
    return columns, _csv_dicts(path, columns, records)


def _csv_dicts(
    path: Path, columns: list[str], records: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, dict[str, str]]]:
    for line, values in records:
        if len(values) != len(columns):
            raise InputError(path, f"row has {len(values)} fields, header has {len(columns)}", line)
        row: dict[str, str] = {}
        for number, (name, value) in enumerate(zip(columns, values, strict=True), start=1):
            if name:
                row[name] = value
            elif value.strip():
                raise InputError(path, f"value {value.strip()[:40]!r} in column {number}, which has no name", line)
        yield line, row


def _csv_records(path: Path, text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank records with the line each starts on; strict, so that a quote left open or text after
    a closing quote is an error rather than a field that swallows what follows."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                opened = _open_quote_line(text, start)
                raise InputError(
                    path, f"unterminated quote: the quoted field opened on line {opened} is never closed", opened
                ) from None
            if "expected after" in str(error):
                problem = 'text after the closing quote of a field (a quote inside a quoted field is written "")'
                raise InputError(path, problem, reader.line_num) from None
            raise InputError(path, f"malformed CSV: {error}", reader.line_num) from None
        if values:
            yield start, values


def _open_quote_line(text: str, start: int) -> int:
    """The line of the quote that opens the field left open at the end of a record starting on `start`."""
    lines = io.StringIO(text, newline="").readlines()
    quoted = just_closed = False
    at_field_start = True
    opened = start
    for number, line in enumerate(lines[start - 1 :], start=start):
        for char in line:
            if quoted:
                if char == '"':
                    quoted, just_closed = False, True
                continue
            if just_closed and char == '"':  # a doubled quote inside the field
                quoted, just_closed = True, False
                continue
            just_closed = False
            if at_field_start and char == '"':
                quoted, opened, at_field_start = True, number, False
            else:
                at_field_start = char in ",\r\n"
    return opened


def _csv_exam_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    _, rows = read_csv_table(path, text, REQUIRED_COLUMNS)
    return rows


def _refuse_raw_nul(path: Path, text: str) -> None:
    position = text.find("\x00")
    if position >= 0:
        raise InputError(path, "NUL character (\\0) in the file", text.count("\n", 0, position) + 1)


class _JSONProblem(ValueError):
    pass


def _unique_fields(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record: dict[str, object] = {}
    for key, value in pairs:
        if key in record:
            raise _JSONProblem(f"duplicate field {key!r}")
        record[key] = value
    return record


def _no_constant(name: str) -> object:
    raise _JSONProblem(f"invalid JSON: {name} is not a JSON value")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_fields, parse_constant=_no_constant)


def _decode_at(path: Path, text: str, position: int, line: int, first_line: int = 1) -> tuple[object, int]:
    """The JSON value at `position` of `text` (whose first line is `first_line` of the file), which starts
    on `line`: a syntax error names its own line, any other problem the value's."""
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as error:
        raise InputError(path, f"invalid JSON: {error.msg}", first_line + error.lineno - 1) from None
    except _JSONProblem as problem:
        raise InputError(path, str(problem), line) from None
    except RecursionError:
        raise InputError(path, "invalid JSON: nested too deeply", line) from None


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    # "\n" only: JSON strings may hold U+2028, U+0085 and other characters str.splitlines breaks at
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        record, end = _decode_at(path, raw, _skip_space(raw, 0), line, line)
        if raw[end:].strip():
            raise InputError(path, "invalid JSON: extra data after the object", line)
        yield line, _json_row(path, line, record, "each line must be a JSON object")


def _json_array_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """A JSON array of question objects, each located by the line it starts on."""
    position = text.index("[") + 1
    while True:
        position = _skip_space(text, position)
        if text.startswith("]", position):
            break
        line = text.count("\n", 0, position) + 1
        record, position = _decode_at(path, text, position, line)
        yield line, _json_row(path, line, record, "each item of the array must be a JSON object")
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position += 1
        elif not text.startswith("]", position):
            raise InputError(path, "invalid JSON: expected ',' or ']' after an item", text.count("\n", 0, position) + 1)
    end = _skip_space(text, position + 1)
    if end < len(text):
        raise InputError(path, "invalid JSON: extra data after the array", text.count("\n", 0, end) + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, dict) else "list" if isinstance(value, list) else "value"


def _json_row(path: Path, line: int, record: object, not_object: str) -> dict[str, str]:
    """A JSON object as CSV would give it: the id a string or an integer, prompt, options and answer
    strings (null: empty), any other field a string or, if not one, its JSON text."""
    if not isinstance(record, dict):
        raise InputError(path, not_object, line)
    missing = [c for c in REQUIRED_COLUMNS if c not in record]
    if missing:
        raise InputError(path, f"missing field(s) {', '.join(missing)}", line)
    row: dict[str, str] = {}
    for key, value in record.items():
        if isinstance(value, str):
            row[key] = value
        elif value is None:
            row[key] = ""
        elif key == "id" and isinstance(value, int) and not isinstance(value, bool):
            row[key] = str(value)
        elif key == "id" or key in STRING_FIELDS:
            must = "a string or an integer" if key == "id" else "a string"
            shown = json.dumps(value, ensure_ascii=False)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise InputError(path, f"field {key!r} is a JSON {_json_kind(value)} ({shown}); it must be {must}", line)
        else:
            row[key] = json.dumps(value, ensure_ascii=False)
    return row


def _question_from_row(path: Path, line: int, row: Mapping[str, str]) -> Question:
    for key, value in row.items():
        if "\x00" in value:
            raise InputError(path, f"NUL character (\\0) in field {key!r}", line)
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
    extra = {key: value for key, value in row.items() if key not in KNOWN_COLUMNS}
    return Question(id=qid, prompt=prompt, options=options, answer=answer, extra=extra)
