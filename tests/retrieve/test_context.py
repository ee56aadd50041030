"""Packing retrieved passages into a token budget (`retrieve.context`), and how much of a question
its packed passages cover."""

from __future__ import annotations

from openbook.records import Hit, Passage, Question
from openbook.retrieve.context import pack_context, packed_texts, question_coverage, word_coverage


def words(text: str) -> int:
    return len(text.split())


def hit(rank: int, title: str, text: str) -> Hit:
    return Hit(Passage(id=f"p{rank}", doc_id="d", title=title, text=text), score=10.0 - rank, rank=rank)


HITS = [
    hit(0, "Alpha", "One two three. Four five six."),
    hit(1, "Beta", "Seven eight nine. Ten eleven twelve. Thirteen fourteen."),
    hit(2, "Gamma", "Never reached."),
]


def test_whole_passages_in_rank_order_within_budget():
    context = pack_context(HITS, budget_tokens=100, count_tokens=words)
    assert context.passage_ids == ("p0", "p1", "p2")
    assert context.text.startswith("Alpha: One two three.") and "\n\nBeta: Seven" in context.text
    assert context.tokens == words(context.text)


def test_the_first_passage_that_does_not_fit_gives_its_leading_sentences():
    context = pack_context(HITS, budget_tokens=12, count_tokens=words)
    assert context.passage_ids == ("p0", "p1")
    assert context.text == "Alpha: One two three. Four five six.\n\nBeta: Seven eight nine."
    assert context.tokens <= 12


def test_nothing_fits_gives_an_empty_context():
    context = pack_context(HITS, budget_tokens=2, count_tokens=words)
    assert context.text == "" and context.passage_ids == () and context.tokens == 0


def test_question_coverage_is_the_best_share_of_prompt_and_one_option_in_one_packed_passage():
    prompt = "Which of the numbers one and nine are written here?"
    # content words: numbers, one, nine, written, here ("which", "of", "the", "and", "are" are not)
    assert word_coverage(prompt, "one two three") == 1 / 5
    question = Question(id="q", prompt=prompt, options={"A": "twelve", "B": "fourteen thirteen", "C": "two"})
    context = pack_context(HITS, budget_tokens=100, count_tokens=words)
    # Beta holds nine, fourteen and thirteen: 3 of the 7 words of the prompt with option B; Alpha
    # holds one and two (2 of 6 with C); Gamma went in but holds nothing
    assert question_coverage(question, packed_texts(HITS, context)) == 3 / 7
    only_alpha = pack_context(HITS, budget_tokens=7, count_tokens=words)
    assert only_alpha.passage_ids == ("p0",)
    assert packed_texts(HITS, only_alpha) == [HITS[0].passage.text]  # a passage left out of the context does not count
    assert question_coverage(question, packed_texts(HITS, only_alpha)) == 2 / 6
    assert question_coverage(question, []) == 0.0
