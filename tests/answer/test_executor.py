"""Running a plan over an exam, on a scripted backend: the first pass, failures, resuming and the letter
prior. Every test runs in milliseconds."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from openbook.answer import AnswerOptions, execute, make_plan
from openbook.readers.base import option_probabilities
from openbook.readers.letter import estimate_slot_prior
from openbook.records import EarlierRun
from tests.answer.test_cascade import QUESTIONS, YESNO_CASCADE, scripted
from tests.scripted_backend import FakeClock

ONE_PASS = AnswerOptions(progress=False)


def test_one_pass_reads_every_question_once_with_the_plan_readers():
    run = execute(make_plan(replace(ONE_PASS, readers=["letter", "yesno"], rotations=2)), QUESTIONS, backend=scripted())
    assert run.cascade is None and run.reader_names == ("letter-rot2", "yesno")
    assert [r.question.id for r in run.results] == ["easy", "fair", "hard", "hardest"]
    assert all(r.prediction.ranking[0] == "A" and r.reread is None and r.stage == "first" for r in run.results)
    assert run.model_paths == {"answer": "scripted.gguf"}


def test_the_limit_answers_the_first_questions_only():
    run = execute(make_plan(replace(ONE_PASS, limit=2)), QUESTIONS, backend=scripted())
    assert [r.question.id for r in run.results] == ["easy", "fair"]


def test_a_failing_question_stops_the_run_and_keeps_the_answers_before_it():
    backend = scripted(fail_on=lambda prompt, with_context: prompt == "Which is hard?")
    seen = []
    run = execute(make_plan(ONE_PASS), QUESTIONS, backend=backend, on_result=lambda r: seen.append(r.question.id))
    assert [r.question.id for r in run.results] == seen == ["easy", "fair"]
    assert run.failure == "question 'hard': scripted failure on 'Which is hard?'"
    assert isinstance(run.error, RuntimeError)


def test_timings_are_measured_on_the_clock_given():
    clock = FakeClock()
    run = execute(make_plan(ONE_PASS), QUESTIONS, backend=scripted(seconds_per_token=0.01, clock=clock), clock=clock)
    assert run.seconds.total == pytest.approx(clock.now) and run.seconds.model == pytest.approx(clock.now)
    assert run.seconds.per_question == pytest.approx(clock.now / 4) and run.seconds.overhead_fraction == pytest.approx(
        0
    )


def test_a_resumed_run_skips_what_was_answered_and_rereads_the_first_pass_it_takes_up():
    plan = make_plan(replace(YESNO_CASCADE, budget_seconds=math.inf))
    whole = execute(plan, QUESTIONS, backend=scripted())
    first_pass = execute(make_plan(replace(YESNO_CASCADE, budget_seconds=0.0)), QUESTIONS, backend=scripted())
    earlier = EarlierRun(answered=frozenset({"easy"}), first_pass=first_pass.results[1:], seconds=3.0)
    backend = scripted()
    resumed = execute(plan, QUESTIONS, earlier=earlier, backend=backend)
    assert [r.question.id for r in resumed.results] == ["fair", "hard", "hardest"]
    assert all(r.reread is not None for r in resumed.results)
    for result, uninterrupted in zip(resumed.results, whole.results[1:]):
        assert result.prediction.probabilities == pytest.approx(uninterrupted.prediction.probabilities)
    assert resumed.model_paths["triage"] is None  # nothing left for the first pass to read
    assert resumed.cascade.earlier_runs_seconds == 3.0 and resumed.seconds.earlier_runs == 3.0


def test_a_resumed_cascade_counts_the_earlier_runs_time_as_spent():
    first_pass = execute(make_plan(replace(YESNO_CASCADE, budget_seconds=0.0)), QUESTIONS, backend=scripted())
    earlier = EarlierRun(first_pass=first_pass.results, seconds=100.0)
    run = execute(
        make_plan(replace(YESNO_CASCADE, budget_seconds=50.0)), QUESTIONS, earlier=earlier, backend=scripted()
    )
    assert run.cascade.reread == 0 and run.cascade.stopped_by_budget


def test_the_letter_prior_is_fitted_over_the_whole_first_pass_and_divided_out():
    """A model that prefers slot A: with the prior, each reading is divided by the preference fitted
    over the pass (and over earlier runs' readings), which brings it closer to what a model without
    the preference reads, and every changed answer is handed on again."""
    bias = (1.5, 0.0, 0.0, 0.0, 0.0)
    options = replace(ONE_PASS, rotations=3, letter_prior=True)
    seen = []
    run = execute(
        make_plan(options), QUESTIONS, backend=scripted(slot_bias=bias), on_result=lambda r: seen.append(r.question.id)
    )
    assert seen == ["easy", "fair", "hard", "hardest"] * 2
    plain = execute(make_plan(replace(options, letter_prior=False)), QUESTIONS, backend=scripted(slot_bias=bias))
    prior = estimate_slot_prior(r.outputs[0].orders for r in plain.results)
    assert prior[5][0] > 0.5  # the preference for slot A is found
    unbiased = execute(make_plan(replace(options, letter_prior=False)), QUESTIONS, backend=scripted())
    for calibrated, as_read, truth in zip(run.results, plain.results, unbiased.results):
        (output,) = calibrated.outputs
        assert output.probabilities == pytest.approx(
            option_probabilities(calibrated.question.letters, output.orders, prior)
        )
        distance = {
            name: sum(abs(result.prediction.probabilities[k] - truth.prediction.probabilities[k]) for k in "ABCDE")
            for name, result in (("calibrated", calibrated), ("as read", as_read))
        }
        assert distance["calibrated"] < distance["as read"] / 2
    earlier = EarlierRun(readings=[("letter-rot3", r.outputs[0].orders) for r in plain.results[:2]])
    resumed = execute(make_plan(options), QUESTIONS[2:], earlier=earlier, backend=scripted(slot_bias=bias))
    for result, uninterrupted in zip(resumed.results, run.results[2:]):
        assert result.prediction.probabilities == pytest.approx(uninterrupted.prediction.probabilities)


def test_readers_passed_in_serve_a_plan_of_one_stage_only():
    backend = scripted()
    from openbook.readers import LetterReader, PromptReaders

    readers = [PromptReaders(backend, [LetterReader(backend, rotations=5)])]
    (result,) = execute(make_plan(ONE_PASS), QUESTIONS[:1], readers=readers, backend=backend).results
    assert [o.reader for o in result.outputs] == ["letter-rot5"]
    with pytest.raises(ValueError, match="one stage"):
        execute(make_plan(YESNO_CASCADE), QUESTIONS, readers=readers, backend=backend)
