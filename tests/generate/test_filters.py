"""The filters of `openbook generate` on constructed good and bad drafts, each named by its reason."""

from __future__ import annotations

import json
import random

import pytest

from openbook.generate.filters import (
    ANSWER_IN_QUESTION,
    DUPLICATE_OPTIONS,
    EMPTY_FIELD,
    MALFORMED,
    NEAR_DUPLICATE_OPTIONS,
    Draft,
    NearDuplicates,
    ReaderChecks,
    parse_draft,
    rule_problem,
    shuffled,
)
from openbook.records import Passage, Question
from tests.scripted_backend import ScriptedBackend

GOOD = {
    "question": "Which organelle produces most of a cell's ATP by cellular respiration?",
    "A": "The nucleus",
    "B": "The mitochondrion",
    "C": "The ribosome",
    "D": "The Golgi apparatus",
    "E": "The lysosome",
    "answer": "B",
}


def draft(**changes: str) -> Draft:
    parsed = parse_draft(json.dumps({**GOOD, **changes}))
    assert isinstance(parsed, Draft)
    return parsed


def test_a_good_draft_parses_and_passes_the_rules():
    parsed = draft()
    assert parsed.answer == "B" and parsed.options["B"] == "The mitochondrion" and rule_problem(parsed) is None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("{not json", MALFORMED),
        (json.dumps(["a list"]), MALFORMED),
        (json.dumps({k: v for k, v in GOOD.items() if k != "E"}), MALFORMED),  # a missing option
        (json.dumps({**GOOD, "answer": "F"}), MALFORMED),
        (json.dumps({**GOOD, "C": 3}), MALFORMED),
        (json.dumps({**GOOD, "D": "  \n "}), EMPTY_FIELD),
        (json.dumps({**GOOD, "question": ""}), EMPTY_FIELD),
    ],
)
def test_malformed_and_empty_replies_are_named(reply, reason):
    assert parse_draft(reply) == reason


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"C": "the Mitochondrion."}, DUPLICATE_OPTIONS),  # case and punctuation aside, B again
        ({"A": "The large nucleus", "C": "The nucleus, large"}, NEAR_DUPLICATE_OPTIONS),
        ({"question": "The mitochondrion produces most ATP: which organelle is it?"}, ANSWER_IN_QUESTION),
    ],
)
def test_rule_filters_name_the_first_problem(changes, reason):
    assert rule_problem(draft(**changes)) == reason


def test_distractors_that_differ_in_one_word_are_not_near_duplicates():
    assert rule_problem(draft(A="The function's minimum output", C="The function's maximum output")) is None


def test_a_short_answer_inside_a_word_of_the_question_is_no_leak():
    leak_free = draft(question="Which noble gas is the third most abundant in air?", B="Ar", answer="B")
    assert rule_problem(leak_free) is None  # "ar" inside "air" and "third" is not the answer stated


def test_near_duplicate_questions_are_found_across_the_set_and_others_are_not():
    near = NearDuplicates()
    near.add("gen-1", "Which organelle produces most of a cell's ATP by cellular respiration in animal cells?")
    assert (
        near.match("Which organelle produces most of the cell's ATP by cellular respiration in animal cells?")
        == "gen-1"
    )
    assert near.match("What gas do green plants release as a by-product of photosynthesis in sunlight?") is None


def test_shuffled_options_take_the_answer_along_and_never_keep_the_order():
    question = Question("q", "Which?", {"A": "one", "B": "two", "C": "three", "D": "four", "E": "five"}, "B")
    for seed in range(10):
        mixed = shuffled(question, random.Random(seed))
        assert mixed.options[mixed.answer] == "two" and list(mixed.options.values()) != list(question.options.values())
        assert sorted(mixed.options.values()) == sorted(question.options.values())


def test_the_reader_checks_tell_a_question_answered_without_the_passage_from_one_that_needs_it():
    question = Question("q", GOOD["question"], {k: GOOD[k] for k in "ABCDE"}, "B")
    passage = Passage("p1", "d1", "Mitochondrion", "The mitochondrion makes most of the cell's ATP.")

    def needs_the_passage(prompt: str, option: str, with_context: bool) -> float:
        return 3.0 if with_context and option == "The mitochondrion" else 0.0

    def known_by_heart(prompt: str, option: str, with_context: bool) -> float:
        return 3.0 if option == "The mitochondrion" else 0.0

    def misled(prompt: str, option: str, with_context: bool) -> float:
        return 3.0 if option == "The ribosome" else 0.0

    rng = random.Random(0)
    hard = ReaderChecks(ScriptedBackend(score=needs_the_passage))
    assert not hard.too_easy(question, rng) and hard.agrees(question, passage)
    assert ReaderChecks(ScriptedBackend(score=known_by_heart)).too_easy(question, rng)
    assert not ReaderChecks(ScriptedBackend(score=misled)).agrees(question, passage)
