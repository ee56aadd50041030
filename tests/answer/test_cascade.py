"""The cascade's second stage, on a scripted backend: which questions are re-read, in which order, how
each is read, who decides, and how the budget stops it. Every test runs in milliseconds."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from openbook.answer import AnswerOptions, execute, make_plan
from openbook.answer.decide import margin
from openbook.index.build import build_index
from openbook.readers import LetterReader, read_question
from openbook.records import NO_CONTEXT, Question
from tests.scripted_backend import ScriptedBackend

CORRECT = "the right one"


def question(qid: str, prompt: str, lead: float) -> Question:
    """Five options, the first right; `lead`: how far the model prefers it (small: a hard question)."""
    return Question(qid, prompt, {"A": CORRECT, "B": "wrong b", "C": "wrong c", "D": "wrong d", "E": "wrong e"}, "A")


LEADS = {"easy": 4.0, "fair": 1.0, "hard": 0.3, "hardest": 0.05}
QUESTIONS = [question(qid, f"Which is {qid}?", lead) for qid, lead in LEADS.items()]


def score(prompt: str, option: str, with_context: bool) -> float:
    lead = LEADS[prompt.split()[-1].rstrip("?")]
    return (lead + (2.0 if with_context else 0.0)) if option == CORRECT else 0.0


def scripted(**settings) -> ScriptedBackend:
    return ScriptedBackend(score=score, **settings)


# the main stage adds the yes/no reader: a cascade without any index
YESNO_CASCADE = AnswerOptions(readers=["letter", "yesno"], triage_readers=["letter"], progress=False)


def test_the_hardest_questions_are_reread_first_and_the_easy_ones_keep_their_first_answer():
    backend = scripted()
    seen = []
    run = execute(
        make_plan(replace(YESNO_CASCADE, budget_seconds=math.inf)),
        QUESTIONS,
        backend=backend,
        on_result=lambda r: seen.append(r.question.id),
    )
    assert seen[:4] == ["easy", "fair", "hard", "hardest"]  # the first pass, in exam order
    assert seen[4:] == ["hardest", "hard", "fair", "easy"]  # re-reads, smallest margin first
    assert run.cascade.candidates == 4 and run.cascade.reread == 4 and not run.cascade.stopped_by_budget
    assert run.cascade.readers == ("letter", "yesno") and run.cascade.budget_seconds is None
    assert run.reader_names == ("letter-rot3@triage", "letter", "yesno")
    for result in run.results:
        assert [o.reader for o in result.outputs] == ["letter-rot3@triage", "letter", "yesno"]
        assert result.reread is not None and result.reread.kind == "context" and result.stage == "reread-context"


def test_only_questions_under_the_margin_are_candidates():
    first = execute(make_plan(replace(YESNO_CASCADE, triage_readers=["none"])), QUESTIONS, backend=scripted())
    margins = {r.question.id: margin(r.prediction) for r in first.results}
    threshold = (margins["fair"] + margins["hard"]) / 2
    run = execute(
        make_plan(replace(YESNO_CASCADE, escalate_margin=threshold, budget_seconds=math.inf)),
        QUESTIONS,
        backend=scripted(),
    )
    assert run.cascade.candidates == 2
    assert [r.question.id for r in run.results if r.reread is not None] == ["hard", "hardest"]


def test_a_spent_budget_rereads_nothing_and_loads_nothing():
    run = execute(make_plan(replace(YESNO_CASCADE, budget_seconds=0.0)), QUESTIONS, backend=scripted())
    assert run.cascade.candidates == 4 and run.cascade.reread == 0 and run.cascade.stopped_by_budget
    assert run.cascade.readers == () and run.model_paths == {"triage": "scripted.gguf", "main": None}
    assert all(r.reread is None for r in run.results)


def test_the_budget_per_question_counts_every_question_of_the_run():
    plan = make_plan(replace(YESNO_CASCADE, budget_per_question=2.5))
    assert plan.reread.budget.total(4) == 10.0
    assert make_plan(YESNO_CASCADE).reread.budget.total(4) == 40.0  # the default: 10 s per question


@pytest.mark.parametrize("average, decided_by", [(True, "mean of both stages"), (False, "main stage")])
def test_who_decides_a_reread_question(average, decided_by):
    plan = make_plan(replace(YESNO_CASCADE, average_stages=average, budget_seconds=math.inf))
    assert plan.reread.decided_by == decided_by
    # a letter preference that one order cannot cancel: the three readings differ
    (result,) = execute(plan, QUESTIONS[-1:], backend=scripted(slot_bias=(0.8, 0.0, 0.0, 0.0, 0.0))).results
    assert result.outputs[0].probabilities != pytest.approx(result.outputs[1].probabilities)
    deciding = result.outputs if average else result.outputs[1:]
    expected = {k: sum(o.probabilities[k] for o in deciding) / len(deciding) for k in result.question.letters}
    assert result.prediction.probabilities == pytest.approx(expected)


def test_a_failing_reread_stops_the_stage_and_keeps_every_answer_made(monkeypatch):
    backend = scripted(fail_on=lambda prompt, with_context: "hard?" in prompt and backend.calls > 4)
    seen = []
    run = execute(
        make_plan(replace(YESNO_CASCADE, budget_seconds=math.inf)),
        QUESTIONS,
        backend=backend,
        on_result=lambda r: seen.append(r.question.id),
    )
    assert run.failure.startswith("re-reading question 'hard'") and isinstance(run.error, RuntimeError)
    assert [r.question.id for r in run.results] == ["easy", "fair", "hard", "hardest"]
    assert seen == ["easy", "fair", "hard", "hardest", "hardest"] and run.cascade.reread == 1


@pytest.fixture
def index(tmp_path, articles_jsonl):
    folder = tmp_path / "index"
    build_index([articles_jsonl], folder, show_progress=False)
    return folder


def test_a_reread_reads_context_where_it_covers_the_question_else_the_remaining_orders(index):
    """The default routing: a question one retrieved passage covers (>= 0.5 of its words) is read with
    that context; another in the option orders its 3-order triage reading did not see, without
    context, completing it to all 5 orders."""
    covered = Question(
        "covered",
        "Which organelle produces ATP by cellular respiration?",
        {"A": CORRECT, "B": "wrong b", "C": "wrong c", "D": "wrong d", "E": "wrong e"},
        "A",
    )
    off = Question(
        "off", "Which is hardest?", {"A": CORRECT, "B": "wrong b", "C": "wrong c", "D": "wrong d", "E": "wrong e"}, "A"
    )

    def routed_score(prompt: str, option: str, with_context: bool) -> float:
        return (0.2 + (2.0 if with_context else 0.0)) if option == CORRECT else 0.0

    bias = (0.5, 0.0, -0.3, 0.1, 0.0)
    options = AnswerOptions(index=index, context_tokens=120, budget_seconds=math.inf, progress=False)
    plan = make_plan(options)
    assert plan.reread.completion.orders_read == 3 and plan.reread.coverage_threshold == 0.5
    backend = ScriptedBackend(score=routed_score, slot_bias=bias)
    by_id = {r.question.id: r for r in execute(plan, [covered, off], backend=backend).results}
    assert by_id["covered"].reread.kind == "context" and by_id["covered"].reread.coverage >= 0.5
    assert [c.retrieval for c in by_id["covered"].contexts] == ["none", "bm25"]
    assert [o.reader for o in by_id["covered"].outputs] == ["letter-rot3@triage", "letter"]
    rest = by_id["off"]
    assert rest.reread.kind == "orders" and rest.reread.coverage < 0.5
    assert [o.reader for o in rest.outputs] == ["letter-rot3@triage", "letter-rot5@none"]
    assert [c.retrieval for c in rest.contexts] == ["none"]
    # completing the 3 orders read to 5 is reading all 5 at once; that reading alone decides
    (direct,) = read_question([LetterReader(backend, rotations=5)], backend, off, NO_CONTEXT.context)
    assert rest.outputs[1].probabilities == pytest.approx(direct.probabilities)
    assert rest.prediction.probabilities == pytest.approx(direct.probabilities)


def test_a_three_option_question_off_its_context_has_no_orders_left_and_is_not_reread(index):
    three = Question("three", "Which is hardest?", {"A": CORRECT, "B": "wrong b", "C": "wrong c"}, "A")
    options = AnswerOptions(index=index, context_tokens=120, budget_seconds=math.inf, progress=False)
    run = execute(make_plan(options), [three], backend=scripted())
    assert run.cascade.candidates == 1 and run.cascade.reread == 0 and run.results[0].reread is None
