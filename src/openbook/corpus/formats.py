"""Streaming document readers: WikiExtractor, CirrusSearch dumps, JSONL, Parquet and CSV.

Every reader yields `Document`s one at a time (a dump never sits in memory) and counts each record
it must skip in a `DropTally` with its reason and location, instead of stopping or crashing.
Problems with a whole file (unknown format, missing columns) raise `InputError` before any work.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from openbook.corpus.compression import InputStream, strip_compression_suffix
from openbook.corpus.drops import DropTally
from openbook.errors import InputError
from openbook.records import Document

FORMATS = ("wikiextractor", "cirrussearch", "jsonl", "parquet", "csv")
_DOC_OPEN = re.compile(rb"^<doc\s+([^>]*)>\s*$")
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
_REDIRECT = re.compile(r"^\s*#?redirect\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Which columns of a table (JSONL, Parquet, CSV) hold a document's id, title and text."""

    id: str = "id"
    title: str = "title"
    text: str = "text"


def detect_format(path: Path) -> str:
    """Tell a corpus file's format from its name, else from its first line."""
    suffix = strip_compression_suffix(path).suffix.lower()
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    first = _first_line(path)
    if first.startswith(b"<doc"):
        return "wikiextractor"
    if first.startswith(b"{"):
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            raise InputError(path, "first line is not valid JSON", 1) from None
        is_action = isinstance(record, dict) and len(record) == 1 and next(iter(record)) in ("index", "create")
        return "cirrussearch" if is_action else "jsonl"
    raise InputError(path, f"cannot tell the corpus format from its first line {first[:60]!r}; pass --format", 1)


def _first_line(path: Path) -> bytes:
    with InputStream(path) as stream:
        for _, line in stream.lines():
            if line.strip():
                return line.lstrip()
    raise InputError(path, "the file is empty")


class DocumentReader:
    """Iterates the documents of one corpus file; `bytes_read()` tells progress through the file."""

    def __init__(
        self,
        path: str | Path,
        fmt: str | None = None,
        fields: FieldMap = FieldMap(),
        tally: DropTally | None = None,
        label: str | None = None,
    ):
        """`label` names the file in the ids of documents that carry none (`LABEL:LINE`); by default
        its name, which several inputs may share (give each its path below their common folder)."""
        self.path = Path(path)
        self.label = label or self.path.name
        if not self.path.is_file():
            raise InputError(self.path, "corpus file not found")
        self.format = fmt or detect_format(self.path)
        if self.format not in FORMATS:
            raise InputError(self.path, f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")
        self.fields = fields
        self.tally = tally if tally is not None else DropTally()
        self.size = self.path.stat().st_size
        self._position = lambda: 0
        self.actions = self.pages = 0  # CirrusSearch: action lines, and the page lines after them
        if self.format in ("parquet", "csv"):
            self._check_columns()

    def bytes_read(self) -> int:
        return self._position()

    def documents_after(self, skip: int) -> Iterator[Document]:
        """The documents after the first `skip` (a resumed build indexed those before it stopped):
        the records dropped among them were counted then, so they are not counted again."""
        counted, self.tally = self.tally, DropTally()
        documents = iter(self)
        try:
            for _ in itertools.islice(documents, skip):
                pass
        finally:
            self.tally = counted
        yield from documents

    def why_empty(self) -> str:
        """Why no document came out of the file, in a few words."""
        if self.format == "cirrussearch" and self.pages == 0:
            if self.actions:
                return (
                    f"{self.actions:,} CirrusSearch action lines and no page document after any of them "
                    "(in a dump each action line is followed by its page's line: is this file cut to its action lines?)"
                )
            return "no CirrusSearch page document"
        return "none of its records is a document (see the records dropped)"

    def __iter__(self) -> Iterator[Document]:
        if self.format == "parquet":
            yield from self._parquet()
            return
        with InputStream(self.path) as stream:
            self._position = stream.compressed_position
            parse = {
                "wikiextractor": self._wikiextractor,
                "cirrussearch": self._cirrussearch,
                "jsonl": self._jsonl,
                "csv": self._csv,
            }[self.format]
            yield from parse(stream)
        self._position = lambda: self.size

    # -- helpers shared by the formats -------------------------------------------------------
    def _drop(self, reason: str, line: int | None) -> None:
        self.tally.drop(reason, str(self.path), line)

    def _document(self, doc_id: object, title: object, text: object, line: int) -> Document | None:
        """A Document from raw fields, or None (counted) when the record cannot be one: a text or title
        that is not a string (a number, object, list or boolean in JSON or Parquet) is dropped with
        its kind, never indexed as its Python form ("{'a': 'b'}", "True")."""
        if text is None:
            self._drop(f"missing {self.fields.text!r} field", line)
            return None
        for name, value, allowed in (
            (self.fields.text, text, (str,)),
            (self.fields.title, title, (str, type(None))),
            (self.fields.id, doc_id, (str, int, float, type(None))),  # numeric ids are ids
        ):
            if not isinstance(value, allowed) or isinstance(value, bool):
                self._drop(f"{name!r} is {_kind(value)}, not text", line)
                return None
        text = str(text).strip()
        if not text:
            self._drop("empty text", line)
            return None
        doc_id = str(doc_id).strip() if doc_id not in (None, "") else f"{self.label}:{line}"
        return Document(id=doc_id, title=str(title or "").strip(), text=text, source=self.path.name)

    def _decoded_lines(self, stream: InputStream) -> Iterator[tuple[int, str]]:
        for number, raw in stream.lines():
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                self._drop("undecodable bytes (not UTF-8)", number)

    def _json_records(self, stream: InputStream) -> Iterator[tuple[int, dict]]:
        for number, text in self._decoded_lines(stream):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as error:
                self._drop(f"invalid JSON ({error.msg})", number)
                continue
            if not isinstance(record, dict):
                self._drop("JSON line is not an object", number)
                continue
            yield number, record

    # -- formats ----------------------------------------------------------------------------
    def _wikiextractor(self, stream: InputStream) -> Iterator[Document]:
        """`<doc id=".." url=".." title="..">` ... `</doc>` blocks; the first body line repeats the title."""
        attributes: dict[str, str] | None = None
        body: list[str] = []
        start = 0
        bad_bytes = False
        for number, raw in stream.lines():
            opening = _DOC_OPEN.match(raw)
            if opening:
                if attributes is not None:
                    self._drop("unterminated <doc> block", start)
                header = opening.group(1).decode("utf-8", errors="replace")
                attributes = {k: html.unescape(v) for k, v in _ATTRIBUTE.findall(header)}
                body, start, bad_bytes = [], number, False
            elif raw.strip() == b"</doc>":
                if attributes is None:
                    self._drop("</doc> without <doc>", number)
                    continue
                if bad_bytes:
                    self._drop("undecodable bytes (not UTF-8)", start)
                else:
                    title = attributes.get("title", "")
                    if body and html.unescape(body[0].strip()) == title:
                        body = body[1:]
                    document = self._document(attributes.get("id"), title, "\n".join(body), start)
                    if document is not None:
                        yield document
                attributes = None
            elif attributes is not None:
                try:
                    body.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    bad_bytes = True
        if attributes is not None:
            self._drop("unterminated <doc> block", start)

    def _cirrussearch(self, stream: InputStream) -> Iterator[Document]:
        """Elasticsearch bulk layout: an action line (`{"index": {"_id": ..}}`, `_type` optional)
        then the page document. Only articles (namespace 0) that are not redirects are kept."""
        pending_id: str | None = None
        for number, record in self._json_records(stream):
            action = record.get("index") or record.get("create")
            if len(record) == 1 and isinstance(action, dict):
                pending_id = None if action.get("_id") is None else str(action["_id"])
                self.actions += 1
                continue
            self.pages += 1
            doc_id = record.get("page_id", pending_id)
            pending_id = None
            namespace = record.get("namespace", 0)
            if namespace != 0:
                self._drop(f"namespace {namespace} (not an article)", number)
                continue
            text = record.get("text")
            if text is None:
                text = record.get("opening_text")  # may be null too; _document counts it then
            if isinstance(text, str) and _REDIRECT.match(text):
                self._drop("redirect", number)
                continue
            document = self._document(doc_id, record.get("title"), text, number)
            if document is not None:
                yield document

    def _jsonl(self, stream: InputStream) -> Iterator[Document]:
        f = self.fields
        for number, record in self._json_records(stream):
            document = self._document(record.get(f.id), record.get(f.title), record.get(f.text), number)
            if document is not None:
                yield document

    def _csv(self, stream: InputStream) -> Iterator[Document]:
        csv.field_size_limit(2**31 - 1)
        last_line = [0]  # physical line last handed to the csv module: a record's location

        def lines() -> Iterator[str]:
            for number, text in self._decoded_lines(stream):
                last_line[0] = number
                yield text + "\n"

        reader = csv.DictReader(_after_blank_lines(lines()), dialect=self._csv_dialect())
        f = self.fields
        for row in reader:
            # the record's first line: its last one less the line breaks quoted inside its fields
            line = last_line[0] - sum(v.count("\n") for v in row.values() if isinstance(v, str))
            line -= sum(v.count("\n") for v in row.get(None, []))
            if None in row:
                self._drop("row has more fields than the header", line)
                continue
            document = self._document(row.get(f.id), row.get(f.title), row.get(f.text), line)
            if document is not None:
                yield document

    def _csv_dialect(self) -> type[csv.Dialect]:
        """CSV quotes fields; TSV (as databases and pandas write it) does not: a `"` is text there."""
        if strip_compression_suffix(self.path).suffix.lower() == ".tsv":
            return _UnquotedTabs
        return csv.excel

    def _check_columns(self) -> None:
        """A table without its text column is refused up front, before any file is read."""
        if self.format == "parquet":
            columns = self._parquet_file().schema_arrow.names
        else:
            header = _first_line(self.path).decode("utf-8", errors="replace")
            columns = next(csv.reader([header], dialect=self._csv_dialect()))
        if self.fields.text not in columns:
            raise InputError(self.path, f"no {self.fields.text!r} column; found {', '.join(columns)}", 1)

    def _parquet_file(self) -> pq.ParquetFile:
        if strip_compression_suffix(self.path) != self.path:
            raise InputError(
                self.path, "a Parquet file compresses its own columns: give it uncompressed (not .gz/.bz2/.zst)"
            )
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as error:
            raise InputError(self.path, f"not a readable Parquet file ({error})") from None

    def _parquet(self) -> Iterator[Document]:
        parquet = self._parquet_file()
        f = self.fields
        wanted = [c for c in (f.id, f.title, f.text) if c in parquet.schema_arrow.names]
        total_rows = max(parquet.metadata.num_rows, 1)
        row = 0
        self._position = lambda: self.size * row // total_rows
        for batch in parquet.iter_batches(columns=wanted, batch_size=4096):
            values = batch.to_pydict()
            for i in range(batch.num_rows):
                row += 1
                document = self._document(
                    values[f.id][i] if f.id in values else None,
                    values[f.title][i] if f.title in values else "",
                    values[f.text][i],
                    row,
                )
                if document is not None:
                    yield document


def _kind(value: object) -> str:
    """A JSON or Parquet value's kind, as a message names it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


class _UnquotedTabs(csv.excel_tab):
    """TSV: tab-separated, and a `"` is text, not a quote."""

    quoting = csv.QUOTE_NONE


def _after_blank_lines(lines: Iterator[str]) -> Iterator[str]:
    """`lines` from the first that is not blank: the header, as `_check_columns` read it (blank lines
    later may be inside a quoted field, so they stay)."""
    for text in lines:
        if text.strip():
            yield text
            break
    yield from lines


def read_documents(
    path: str | Path, fmt: str | None = None, fields: FieldMap = FieldMap(), tally: DropTally | None = None
) -> Iterator[Document]:
    """Convenience: the documents of one file."""
    return iter(DocumentReader(path, fmt, fields, tally))
