"""The budget in tokens: the first pass planned from each question's token cost and the measured
pace, the re-reads costed before they run. The scripted backend makes every evaluated token cost a
known time on a fake clock, so a run's seconds are exact and the rule can be checked to the token."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from openbook.answer import AnswerOptions, execute, make_plan
from openbook.answer.budget import Pace, plan_first_pass
from openbook.records import Question
from tests.scripted_backend import FakeClock, ScriptedBackend

SECONDS_PER_TOKEN = 0.01
CASCADE = AnswerOptions(readers=["letter", "yesno"], triage_readers=["letter"], progress=False)


def exam(words_per_option: int, count: int = 6) -> list[Question]:
    """`count` questions whose options are `words_per_option` words long (tokens, to the scripted
    backend); the first option is right, and the model leans to it by a different margin each."""
    pad = " ".join(["filler"] * (words_per_option - 1))
    return [
        Question(
            f"q{i}-{words_per_option}",
            f"Which is number {i}?",
            {letter: f"{letter.lower()}{i} {pad}" for letter in "ABCDE"},
            "A",
        )
        for i in range(count)
    ]


def score(prompt: str, option: str, with_context: bool) -> float:
    number = int(prompt.rstrip("?").split()[-1])
    return 0.2 * (number + 1) if option.startswith("a") else 0.0


def timed() -> tuple[ScriptedBackend, FakeClock]:
    clock = FakeClock()
    return ScriptedBackend(score=score, seconds_per_token=SECONDS_PER_TOKEN, clock=clock), clock


def run_with_budget(questions: list[Question], seconds: float):
    backend, clock = timed()
    return execute(make_plan(replace(CASCADE, budget_seconds=seconds)), questions, backend=backend, clock=clock)


def test_every_question_gets_one_order_then_more_cheapest_first_while_they_fit():
    pace = Pace().add(1.0, 100)  # 0.01 s per token
    costs = [[100, 150, 200], [300, 500, 700], [100, 150, 200]]
    planned = plan_first_pass(costs, pace, allowance=6.0, budget_left=10.0)
    assert planned.orders == (2, 1, 2) and planned.tokens == 600 and planned.covers
    # a second order for all before a third for any
    assert plan_first_pass(costs, pace, allowance=8.7, budget_left=10.0).orders == (3, 2, 2)
    assert plan_first_pass(costs, pace, allowance=math.inf, budget_left=math.inf).orders == (3, 3, 3)
    assert plan_first_pass(costs, Pace(), allowance=0.0, budget_left=0.0).orders == (3, 3, 3)  # unmeasured: free


def test_a_budget_below_one_order_per_question_is_said_and_the_cheapest_reading_is_made():
    planned = plan_first_pass([[100, 150], [100, 150]], Pace().add(1.0, 100), allowance=0.5, budget_left=1.0)
    assert planned.orders == (1, 1) and not planned.covers
    assert "cannot cover even one option order per question" in planned.describe()
    run = run_with_budget(exam(40), 1.0)
    assert not run.cascade.budget_covers_first_pass and run.cascade.reread == 0
    assert run.cascade.first_pass_orders == {"1": 6}
    assert "cannot cover" in run.cascade.first_pass
    assert [o.reader for o in run.results[0].outputs] == ["letter@triage"]


@pytest.mark.parametrize("words", [3, 20, 60])
def test_a_budgeted_run_ends_within_its_budget_on_short_and_long_questions(words):
    """The run spends its budget, never more: its seconds are at most the budget and within the
    cost of one more reading of it, on options of 3 (short), 20 and 60 (long) tokens each."""
    questions = exam(words)
    whole = execute(make_plan(replace(CASCADE, budget_seconds=math.inf)), questions, backend=timed()[0])
    for share in (0.6, 0.8, 0.95):
        cheapest = sum(r.outputs[0].prompt_tokens for r in whole.results) * SECONDS_PER_TOKEN  # 3 orders each
        budget = share * cheapest * 2
        run = run_with_budget(questions, budget)
        one_reading = max(o.prompt_tokens for r in whole.results for o in r.outputs) * SECONDS_PER_TOKEN
        assert run.seconds.total <= budget + 1e-9, (words, share)
        assert run.seconds.total >= budget - one_reading - 1e-9, (words, share)
        assert len(run.results) == len(questions)


def costs_of(questions: list[Question], orders: int) -> dict[str, int]:
    """Each question's first-pass tokens in `orders` option orders, from a run without a budget."""
    options = replace(CASCADE, budget_seconds=math.inf, triage_rotations=orders)
    run = execute(make_plan(options), questions, backend=timed()[0])
    return {r.question.id: r.outputs[0].prompt_tokens for r in run.results}


def test_long_questions_keep_fewer_orders_and_leave_budget_for_the_rereads():
    """On an exam of short and long questions, a budget whose first-pass share holds 3 orders of the
    short ones and 1 of the long ones gives them just that; the pace measured is the scripted one."""
    short, long = exam(3, 4), exam(60, 4)
    questions = short + long
    one, three = costs_of(questions, 1), costs_of(questions, 3)
    first_pass = sum(three[q.id] for q in short) + sum(one[q.id] for q in long)
    calibration = one[questions[0].id]  # the start-up measurement: the first question in one order
    budget = (calibration + first_pass / make_plan(CASCADE).reread.first_pass_share + 1) * SECONDS_PER_TOKEN
    run = run_with_budget(questions, budget)
    orders = {r.question.id: len(r.outputs[0].orders.logprobs) for r in run.results}
    assert [orders[q.id] for q in questions] == [3, 3, 3, 3, 1, 1, 1, 1]
    assert run.cascade.first_pass_orders == {"1": 4, "3": 4}
    assert run.cascade.tokens_per_second == pytest.approx(1 / SECONDS_PER_TOKEN)
    assert run.cascade.reread > 0 and run.seconds.total <= budget + 1e-9


def test_a_reread_that_does_not_fit_is_passed_over_for_a_cheaper_one():
    """The hardest question is long and its re-read does not fit what is left; the next, short, does."""
    long_hard = replace(exam(80, 1)[0], id="long", prompt="Which is number 0?")
    short_easy = replace(exam(3, 2)[1], id="short", prompt="Which is number 1?")
    questions = [long_hard, short_easy]
    whole = execute(make_plan(replace(CASCADE, budget_seconds=math.inf)), questions, backend=timed()[0])
    first = {r.question.id: r.outputs[0].prompt_tokens for r in whole.results}
    reread = {r.question.id: sum(o.prompt_tokens for o in r.outputs[1:]) for r in whole.results}
    assert whole.cascade.reread == 2 and reread["long"] > 2 * reread["short"]
    one = costs_of(questions, 1)
    # the start-up measurement, the first pass in 3 orders (all of the budget may go to it), the short
    # re-read and half of it again: not the long one
    tokens = one["long"] + sum(first.values()) + 1.5 * reread["short"]
    plan = make_plan(replace(CASCADE, budget_seconds=tokens * SECONDS_PER_TOKEN))
    plan = replace(plan, reread=replace(plan.reread, first_pass_share=1.0))
    backend, clock = timed()
    run = execute(plan, questions, backend=backend, clock=clock)
    by_id = {r.question.id: r for r in run.results}
    assert [len(r.outputs[0].orders.logprobs) for r in run.results] == [3, 3]
    assert by_id["long"].reread is None and by_id["short"].reread is not None
    assert run.cascade.stopped_by_budget and run.seconds.total <= tokens * SECONDS_PER_TOKEN + 1e-9


def test_a_reread_in_more_orders_reads_all_that_are_left_where_they_fit_its_share_else_fewer():
    from openbook.answer.cascade import orders_that_fit
    from openbook.readers import LetterReader, read_question
    from openbook.records import NO_CONTEXT

    backend, _ = timed()
    question = exam(60, 1)[0]
    (triage,) = read_question([LetterReader(backend, rotations=1)], backend, question, NO_CONTEXT.context)
    pace = Pace().add(SECONDS_PER_TOKEN, 1)
    completers: dict = {}

    def orders_read_for(share: float) -> tuple[int, int]:
        completer, tokens = orders_that_fit(completers, backend, True, triage, question, pace, share)
        assert tokens == completer.tokens(question, NO_CONTEXT.context)
        return completer.readers[0].rotations - 1, tokens

    every, every_tokens = orders_read_for(math.inf)
    one, one_tokens = orders_read_for(0.0)
    assert (every, one) == (4, 1) and one_tokens < every_tokens
    two, two_tokens = orders_read_for((one_tokens + (every_tokens - one_tokens) / 3) * SECONDS_PER_TOKEN + 1e-9)
    assert (
        two == 2
        and pace.seconds_for(two_tokens) <= (one_tokens + (every_tokens - one_tokens) / 3) * SECONDS_PER_TOKEN + 1e-9
    )


def test_each_question_carries_the_model_seconds_spent_on_it():
    """On the fake clock a question's seconds are its readings' tokens at the scripted pace: in a batch
    of questions read together, each its own tokens' share; with its re-read's, adding up to the run's
    model seconds but the start-up reading that measured the pace."""
    questions = exam(3) + exam(20)  # read 4 at a time: the second batch holds two short and two long
    backend, clock = timed()
    run = execute(
        make_plan(replace(CASCADE, question_batch=4, budget_seconds=1e6)), questions, backend=backend, clock=clock
    )
    seconds = {r.question.id: r.seconds for r in run.results}
    assert all(r.reread is not None and r.reread.kind == "context" for r in run.results)
    # a short question read beside long ones took what one read beside short ones took, not a 4th of the batch
    assert seconds["q4-3"] == pytest.approx(seconds["q0-3"]) and seconds["q0-20"] == pytest.approx(seconds["q4-20"])
    assert seconds["q0-20"] > seconds["q0-3"]
    start_up = costs_of(questions, 1)["q0-3"] * SECONDS_PER_TOKEN  # the pace measured on q0 in one order
    assert sum(seconds.values()) == pytest.approx(run.seconds.model - start_up)
