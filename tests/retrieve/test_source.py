"""The source passage of a question (`retrieve.source`): found by word 5-gram containment, and the
rows whose context does not carry their answer left out."""

from __future__ import annotations

from openbook.records import Hit, Passage, Question
from openbook.retrieve.source import first_source_rank, overlap_with_source

SOURCE = (
    "The mitochondrion is the powerhouse of the cell. It produces ATP by cellular respiration. "
    "Mitochondria have their own DNA, inherited from the mother."
)


def test_source_matching_by_word_five_gram_containment():
    chunk = "It produces ATP by cellular respiration. Mitochondria have their own DNA"
    assert overlap_with_source(chunk, SOURCE) == 1.0
    assert (
        overlap_with_source("Mitochondria have their own DNA. Volcanoes erupt lava at plate boundaries often.", SOURCE)
        < 0.5
    )
    assert overlap_with_source("the powerhouse", SOURCE) == 1.0  # shorter than a 5-gram: all its words, in order
    assert overlap_with_source("", SOURCE) == 0.0
    ranked = [
        Hit(Passage("x", "x", "", "Volcanoes erupt lava at plate boundaries."), 2, 0),
        Hit(Passage("y", "y", "", chunk), 1, 1),
    ]
    assert first_source_rank(ranked, SOURCE) == 1 and first_source_rank(ranked[:1], SOURCE) is None


def test_rows_whose_context_does_not_carry_them_are_not_grounded():
    def row(qid, prompt, answer, context):
        return Question(qid, prompt, {"A": answer, "B": "nothing"}, answer="A", extra={"context": context})

    questions = [
        row("1", "Where is the university?", "Orlando Florida", "The university is in Orlando, Florida."),
        row(
            "2",
            "What research did the university do?",
            "modeling and simulation",
            "The university is in Orlando, Florida. Its research covers modeling and simulation.",
        ),
        row("3", "What research does industry fund at the university?", "applied research", "Volcanoes erupt lava."),
        row("4", "Who proposed PIXE?", "Sven Johansson", "Pise may refer to a village in India."),
    ]
    from openbook.retrieve.source import grounded_questions

    assert [q.id for q in grounded_questions(questions)] == ["1", "2"]
