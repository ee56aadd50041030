"""Reading on a pool several jobs wide, on the scripted backend: a stage's questions cut into the pool's
width and put back in order, the cascade's re-reads made in waves, each still costed against the
whole run's budget. `SideBySide` reads its jobs one after the other here but, on the fake clock, takes
the time of the longest, as actors reading side by side do. Ray itself is tested in test_ray_answer."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from openbook.answer import AnswerOptions, execute, make_plan
from openbook.answer.pool import LocalPool, split
from openbook.index.build import build_index
from openbook.records import Question
from tests.scripted_backend import FakeClock, ScriptedBackend

SECONDS_PER_TOKEN = 0.01


class SideBySide(LocalPool):
    """This process's reading, `width` jobs at a time taking the longest one's time on `clock`."""

    def __init__(self, width: int, clock: FakeClock | None = None):
        self.width = width
        self.clock = clock
        self.batches: list[list[int]] = []  # per call, each job's question count

    def read(self, jobs):
        self.batches.append([len(job.questions) for job in jobs])
        if self.clock is None:
            return super().read(jobs)
        started, longest, outputs = self.clock.now, 0.0, []
        for wave in range(0, len(jobs), self.width):
            begun = self.clock.now
            for job in jobs[wave : wave + self.width]:
                self.clock.now = begun
                outputs.extend(super().read([job]))
                longest = max(longest, self.clock.now - begun)
            self.clock.now = begun + longest
            longest = 0.0
        assert self.clock.now >= started
        return outputs


def score(prompt: str, option: str, with_context: bool) -> float:
    number = int(prompt.rstrip("?").split()[-1])
    return 0.15 * (number + 1) + (2.0 if with_context else 0.0) if option.startswith("a") else 0.0


def exam(count: int) -> list[Question]:
    """Questions the model leans to the right answer of by a different margin each; the even ones
    are about a passage of the test index (their context covers them), the odd ones about nothing in it."""
    questions = []
    for i in range(count):
        covered = i % 2 == 0
        prompt = f"Which organelle produces ATP by cellular respiration, number {i}?" if covered else f"Which is {i}?"
        topic = "powerhouse of the cell" if covered else "colour"
        questions.append(Question(f"q{i}", prompt, {x: f"{x.lower()}{i} {topic}" for x in "ABCDE"}, "A"))
    return questions


@pytest.fixture
def index(tmp_path, articles_jsonl):
    build_index([articles_jsonl], tmp_path / "index", show_progress=False)
    return tmp_path / "index"


def comparable(run):
    return [
        (r.question.id, r.prediction.probabilities, [o.reader for o in r.outputs], r.reread and r.reread.kind)
        for r in run.results
    ]


def test_split_cuts_in_consecutive_near_equal_parts_none_empty():
    assert split(7, 3) == [range(0, 2), range(2, 5), range(5, 7)]
    assert split(2, 5) == [range(0, 1), range(1, 2)]
    assert split(0, 3) == []


def test_a_wide_pool_gives_the_answers_of_one_process_with_both_kinds_of_reread(index):
    options = AnswerOptions(index=index, context_tokens=120, budget_seconds=math.inf, progress=False)
    plan = make_plan(replace(options, question_batch=2))
    questions = exam(9)
    alone = execute(plan, questions, backend=ScriptedBackend(score=score))
    pool = SideBySide(width=3)
    wide = execute(plan, questions, backend=ScriptedBackend(score=score), pool=pool)
    assert comparable(wide) == comparable(alone)
    kinds = {r.reread.kind for r in wide.results if r.reread is not None}
    assert kinds == {"context", "orders"}  # both ways of re-reading were cut into jobs and put back
    # the first pass in batches of question_batch x width questions, cut into the pool's width
    # the first pass in batches of question_batch x width questions, each cut into the pool's width;
    # then the nine re-reads in waves of three, a question each
    assert pool.batches == [[2, 2, 2], [1, 1, 1]] + [[1, 1, 1]] * 3


def test_side_by_side_the_budget_still_holds_and_buys_more_rereads():
    options = AnswerOptions(readers=["letter", "yesno"], triage_readers=["letter"], progress=False)
    questions = exam(12)

    def run(width: int, seconds: float):
        clock = FakeClock()
        backend = ScriptedBackend(score=score, seconds_per_token=SECONDS_PER_TOKEN, clock=clock)
        plan = make_plan(replace(options, budget_seconds=seconds))
        return execute(plan, questions, backend=backend, clock=clock, pool=SideBySide(width, clock)), clock.now

    ample, _ = run(1, math.inf)
    needed = ample.seconds.total
    one, one_took = run(1, 0.7 * needed)
    two, two_took = run(2, 0.7 * needed)
    for took in (one_took, two_took):
        assert took <= 0.7 * needed + 1e-9  # every reading costed before it ran: none overran
    # alone, the first pass leaves some questions 2 orders and the budget stops the re-reads half way;
    # two readers side by side read every question in 3 orders and re-read them all within it
    assert one.cascade.first_pass_orders == {"2": 6, "3": 6} and one.cascade.stopped_by_budget
    assert one.cascade.reread == 6
    assert two.cascade.first_pass_orders == {"3": 12} and two.cascade.reread == 12


def test_a_batch_that_fails_is_read_again_one_by_one_to_name_its_question_and_keep_the_others():
    questions = exam(5)
    backend = ScriptedBackend(score=score, fail_on=lambda prompt, with_context: prompt.endswith("number 2?"))
    plan = make_plan(AnswerOptions(triage_readers=["none"], progress=False, question_batch=2))
    run = execute(plan, questions, backend=backend, pool=SideBySide(width=2))
    assert run.failure.startswith("question 'q2':")  # not the batch 'q0..q3'
    assert [r.question.id for r in run.results] == ["q0", "q1"]  # answered in the failing batch, kept


def test_a_wave_that_fails_names_its_questions_and_every_first_pass_answer_stands(index):
    questions = exam(6)
    backend = ScriptedBackend(score=score, fail_on=lambda prompt, with_context: with_context and "number 2?" in prompt)
    options = AnswerOptions(index=index, context_tokens=120, budget_seconds=math.inf, progress=False)
    run = execute(make_plan(options), questions, backend=backend, pool=SideBySide(width=2))
    assert run.failure.startswith("re-reading questions ") and "'q2'" in run.failure
    assert len(run.results) == 6  # the first pass answered every question; those answers stand
