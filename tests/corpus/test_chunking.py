from __future__ import annotations

import pytest

from openbook.corpus import ChunkSettings, chunk_document
from openbook.corpus.chunking import pack_sentences, split_sentences
from openbook.errors import ConfigError
from openbook.records import Document

SENTENCES = [f"Sentence number {i} talks about topic {i * 7} in some detail." for i in range(40)]
TEXT = " ".join(SENTENCES[:20]) + "\n" + " ".join(SENTENCES[20:])


def test_split_sentences_respects_paragraphs_and_abbreviations():
    text = "Dr. Smith visited Washington D.C. in 1990. He left.\nHeading\nNext paragraph here."
    assert split_sentences(text) == [
        "Dr. Smith visited Washington D.C. in 1990.",
        "He left.",
        "Heading",
        "Next paragraph here.",
    ]


@pytest.mark.parametrize("size", [256, 512, 1024])
def test_passages_never_cut_sentences_and_respect_size(size):
    passages = chunk_document(Document("d1", "Topic", TEXT), ChunkSettings(size=size))
    for passage in passages:
        assert len(passage.text) <= size * 1.25  # a short tail may join the last passage
        assert all(s in SENTENCES for s in passage.text.replace(". ", ".|").split("|"))
    joined = " ".join(p.text for p in passages)
    assert joined == " ".join(SENTENCES)
    assert all(p.title == "Topic" and p.indexed_text().startswith("Topic\n") for p in passages)
    assert len(passages) >= len(TEXT) // size


def test_ids_are_stable_and_ordered():
    settings = ChunkSettings(size=256)
    first = chunk_document(Document("d1", "T", TEXT), settings)
    second = chunk_document(Document("d1", "T", TEXT), settings)
    assert [p.id for p in first] == [p.id for p in second] == [f"d1:{i}" for i in range(len(first))]


def test_overlap_repeats_whole_sentences():
    passages = pack_sentences(SENTENCES, ChunkSettings(size=256, overlap=120))
    for previous, current in zip(passages, passages[1:]):
        previous_sentences = previous.replace(". ", ".|").split("|")
        first = current.replace(". ", ".|").split("|")[0]
        repeated = " ".join(previous_sentences[previous_sentences.index(first) :])  # whole trailing sentences
        assert current.startswith(repeated) and 0 < len(repeated) <= 120
    no_overlap = pack_sentences(SENTENCES, ChunkSettings(size=256))
    assert len(passages) > len(no_overlap)


def test_a_sentence_longer_than_the_size_is_cut_at_whitespace():
    long_sentence = " ".join(["word"] * 200) + "."
    pieces = pack_sentences([long_sentence], ChunkSettings(size=100))
    assert all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces) == long_sentence


def test_short_tail_joins_previous_passage():
    pieces = pack_sentences(["a" * 200, "b" * 200, "Tiny end."], ChunkSettings(size=256))
    assert pieces == ["a" * 200, "b" * 200 + " Tiny end."]


@pytest.mark.parametrize("size, overlap", [(16, 0), (256, 128), (256, -1)])
def test_invalid_settings(size, overlap):
    with pytest.raises(ConfigError):
        ChunkSettings(size=size, overlap=overlap)
