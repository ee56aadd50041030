"""Sentence-aware chunking: passages of about N characters that do not cut sentences.

Paragraphs are split into sentences (blingfire's rule-based segmenter, ~10 MB/s), then sentences are
packed greedily into passages of at most `size` characters. Only a single sentence longer than `size`
is cut, at whitespace. `overlap` repeats the last sentences (up to that many characters) of a passage
at the start of the next. A short tail (under a quarter of `size`) joins the passage before it rather
than standing alone as a fragment, so a document's last passage may reach 1.25 × `size`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import blingfire

from openbook.errors import ConfigError
from openbook.records import Document, Passage


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    size: int = 512
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ConfigError(f"chunk size must be at least 32 characters, got {self.size}")
        if not 0 <= self.overlap < self.size // 2:
            raise ConfigError(f"overlap must be in [0, size/2), got {self.overlap} for size {self.size}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def split_sentences(text: str) -> list[str]:
    """Sentences of a text, paragraph breaks respected (blingfire does not treat newlines as ends)."""
    sentences: list[str] = []
    for paragraph in text.split("\n"):
        paragraph = paragraph.strip()
        if paragraph:
            sentences.extend(s for s in blingfire.text_to_sentences(paragraph).split("\n") if s)
    return sentences


def _cut_long(sentence: str, size: int) -> Iterator[str]:
    """A sentence longer than `size`, cut at the last whitespace before each limit."""
    while len(sentence) > size:
        cut = sentence.rfind(" ", 0, size + 1)
        cut = cut if cut > size // 2 else size
        yield sentence[:cut].rstrip()
        sentence = sentence[cut:].lstrip()
    if sentence:
        yield sentence


def pack_sentences(sentences: list[str], settings: ChunkSettings) -> list[str]:
    size = settings.size
    pieces = [piece for s in sentences for piece in _cut_long(s, size)]
    chunks: list[list[str]] = []
    current: list[str] = []
    carried = 0  # leading sentences of `current` repeated from the previous chunk (overlap)
    length = 0
    for piece in pieces:
        if current and length + 1 + len(piece) > size:
            chunks.append(current)
            current, length = _overlap_tail(current, settings.overlap, size - len(piece) - 1)
            carried = len(current)
        length += len(piece) + (1 if current else 0)
        current.append(piece)
    fresh = current[carried:]
    if fresh:
        if chunks and len(" ".join(fresh)) < size // 4:
            chunks[-1] = chunks[-1] + fresh
        else:
            chunks.append(current)
    return [" ".join(chunk) for chunk in chunks]


def _overlap_tail(chunk: list[str], overlap: int, room: int) -> tuple[list[str], int]:
    """The last sentences of `chunk` totalling at most `overlap` (and fitting `room`) characters."""
    tail: list[str] = []
    length = 0
    for sentence in reversed(chunk):
        added = len(sentence) + (1 if tail else 0)
        if length + added > min(overlap, room):
            break
        tail.insert(0, sentence)
        length += added
    return tail, length


def chunk_document(document: Document, settings: ChunkSettings) -> list[Passage]:
    """Passages of one document, ids `<doc id>:<n>` (stable for the same corpus and settings)."""
    texts = pack_sentences(split_sentences(document.text), settings)
    return [
        Passage(id=f"{document.id}:{n}", doc_id=document.id, title=document.title, text=text, chunk=n)
        for n, text in enumerate(texts)
    ]
