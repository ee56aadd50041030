"""Sentence-level evidence on constructed passages: the sentences that bear on the question, in
document order, within the budget."""

from __future__ import annotations

import numpy as np

from openbook.records import Hit, Passage, Question
from openbook.retrieve.evidence import score_sentences, select_evidence

QUESTION = Question(
    "q",
    "Which enzyme unwinds the DNA double helix during replication?",
    {"A": "Helicase", "B": "Ligase", "C": "Primase"},
    "A",
)
FIRST = Passage(
    "p1",
    "d1",
    "DNA replication",
    "Replication happens before cell division. Helicase unwinds the double helix at the replication fork. "
    "The process is semiconservative.",
)
SECOND = Passage(
    "p2",
    "d2",
    "Enzymes",
    "Enzymes are proteins. Ligase joins Okazaki fragments during replication. Many enzymes need cofactors.",
)
HITS = [Hit(FIRST, 2.0, 0), Hit(SECOND, 1.0, 1)]


def count_words(text: str) -> int:
    return len(text.split())


def test_the_sentence_holding_the_questions_rare_words_scores_best():
    best = max(score_sentences(QUESTION, HITS), key=lambda s: s.score)
    assert best.text.startswith("Helicase unwinds the double helix")


def test_a_tight_budget_keeps_the_best_sentences_in_document_order():
    context = select_evidence(QUESTION, HITS, budget_tokens=20, count_tokens=count_words)
    assert context.text == (
        "DNA replication: Helicase unwinds the double helix at the replication fork.\n\n"
        "Enzymes: Ligase joins Okazaki fragments during replication."
    )
    assert context.passage_ids == ("p1", "p2") and context.tokens == count_words(context.text) <= 20


def test_the_budget_is_counted_on_the_context_as_shown():
    for budget in (5, 12, 20, 40, 200):
        context = select_evidence(QUESTION, HITS, budget_tokens=budget, count_tokens=count_words)
        assert context.tokens == (count_words(context.text) if context.text else 0) <= budget
    whole = select_evidence(QUESTION, HITS, budget_tokens=200, count_tokens=count_words)
    assert whole.text.count(".") == 3  # every sentence that shares a content word with the question
    assert not any(word in whole.text for word in ("semiconservative", "proteins", "cofactors"))
    assert whole.text.index("Replication happens") < whole.text.index("Helicase")  # in their order


def test_nothing_to_select_is_an_empty_context():
    assert select_evidence(QUESTION, [], 100, count_words).text == ""
    assert select_evidence(QUESTION, HITS, 1, count_words).passage_ids == ()


class KeywordEncoder:
    """Embeds a text as which of a few keywords it holds: enough to see similarity counted."""

    KEYWORDS = ("cofactors", "proteins", "enzyme")

    def encode(self, texts, kind):
        vectors = np.array([[float(k in text.lower()) for k in self.KEYWORDS] + [0.1] for text in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_an_embedder_adds_the_similarity_to_the_best_query():
    plain = {s.text: s.score for s in score_sentences(QUESTION, HITS)}
    embedded = {s.text: s.score for s in score_sentences(QUESTION, HITS, KeywordEncoder())}
    gain = {text: embedded[text] - plain[text] for text in plain}
    assert gain["Enzymes are proteins."] > gain["The process is semiconservative."]
