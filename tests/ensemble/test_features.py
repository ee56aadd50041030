"""What an ensemble sees of a question (`ensemble.features`): the coverage features computed from the
same text when answering and when fitting from predictions.jsonl."""

from __future__ import annotations

from openbook.records import Question


def test_coverage_is_computed_from_the_same_text_when_answering_and_when_fitting(tmp_path):
    """`decide` (answering) and `ensemble fit` (from predictions.jsonl) must see the same evidence."""
    from openbook.answer.decide import evidence_text
    from openbook.ensemble.features import context_text
    from openbook.records import Hit, Passage, Prediction, QuestionResult, RetrievedContext
    from openbook.retrieve.context import pack_context
    from openbook.runlog import RunLog, read_records

    hits = [
        Hit(Passage(f"p{i}", f"d{i}", f"Title {i}", f"First sentence {i}. Second sentence {i}."), 1.0 / (i + 1), i)
        for i in range(3)
    ]
    packed = pack_context(hits, budget_tokens=14, count_tokens=lambda text: len(text.split()))
    assert packed.passage_ids == ("p0", "p1")  # the second passage in part, the third left out
    question = Question("q", "Which?", {"A": "first", "B": "third"}, "A")
    contexts = [RetrievedContext("bm25", hits, packed)]
    with RunLog(tmp_path, {"settings": {}}, {}) as log:
        log.add(QuestionResult(question, Prediction("q", ("A", "B"), {"A": 0.6, "B": 0.4}), [], contexts))
    (record,) = read_records(tmp_path / "predictions.jsonl")
    assert evidence_text(contexts) == context_text(record)
    assert "Second sentence 1" in evidence_text(contexts) and "sentence 2" not in evidence_text(contexts)
