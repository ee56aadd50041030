"""The first pass: every question read once, in exam order, as the budget plan allows.

In a budgeted cascade the pace is measured first, on one reading of the first question in one option
order (its output is not kept), and the first pass planned from it (`plan_first_pass`): each
question's option orders, within the first pass's share of the budget. The plan is made again every
`REPLAN_EVERY` questions at the pace measured so far, so a machine slower or faster than its start-up
reading keeps the first pass within its share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openbook.answer.budget import FirstPassPlan, Pace, plan_first_pass
from openbook.answer.stages import LoadedStage, read_stage
from openbook.progress import meter, notice
from openbook.records import Prediction, Question, QuestionResult, ReaderOutput, RetrievedContext

REPLAN_EVERY = 8  # questions

Decide = Callable[[Question, list[ReaderOutput], list[RetrievedContext]], Prediction]


@dataclass(frozen=True)
class FirstPassOutcome:
    results: list[QuestionResult]
    pace: Pace
    plan: FirstPassPlan | None  # as planned at the start; None: nothing to read
    cheapest_tokens: dict[str, int]  # per question id: its reading in one order, the least any reading costs
    failure: str | None = None
    error: Exception | None = None


def read_first_pass(
    stage: LoadedStage,
    questions: Sequence[Question],
    contexts: Sequence[list[RetrievedContext]],
    decide: Decide,
    *,
    share: float,
    budget_left: Callable[[], float],
    batch: int,
    on_result: Callable[[QuestionResult], None] | None,
    progress: bool,
    clock: Callable[[], float],
) -> FirstPassOutcome:
    """Read every question of `questions` with its `contexts`; `budget_left()`: the run's seconds
    left (infinite: no budget, every question in the stage's orders). A failing question stops the
    pass; the answers before it are kept."""
    levels = list(range(1, stage.plan.rotations + 1)) if stage.plan.orders_per_question and stage.varies_orders else []
    variants = [stage.with_orders(k) for k in levels] or [stage]
    costs = [[variant.tokens(q, c) for variant in variants] for q, c in zip(questions, contexts)]
    cheapest = {q.id: cost[0] for q, cost in zip(questions, costs)}
    if not questions:
        return FirstPassOutcome([], Pace(), None, cheapest)
    pace = Pace()
    if math.isfinite(budget_left()):
        pace = _measure_pace(variants[0], questions[0], contexts[0], costs[0][0], clock)
    started = clock()
    allowance = share * budget_left()
    level = [len(variants)] * len(questions)
    planned: FirstPassPlan | None = None
    replan_at = 0
    results: list[QuestionResult] = []
    failure, error = None, None
    with meter("first pass", len(questions), ("questions",), enabled=progress) as m:
        for start in range(0, len(questions), max(1, batch)):
            if math.isfinite(budget_left()) and start >= replan_at:
                spent = clock() - started
                again = plan_first_pass(costs[start:], pace, allowance - spent, budget_left())
                level[start:] = list(again.orders)
                if planned is None:
                    planned = again
                    notice(again.describe(), progress or not again.covers)  # a budget it cannot keep is always said
                replan_at = start + REPLAN_EVERY
            chunk = list(range(start, min(start + max(1, batch), len(questions))))
            answered: list[tuple[int, QuestionResult]] = []
            try:
                for k in sorted({level[i] for i in chunk}):
                    picked = [i for i in chunk if level[i] == k]
                    began = clock()
                    read = read_stage(variants[k - 1], [questions[i] for i in picked], [contexts[i] for i in picked])
                    pace = pace.add(clock() - began, sum(costs[i][k - 1] for i in picked))
                    for i, outputs in zip(picked, read):
                        answered.append(
                            (
                                i,
                                QuestionResult(
                                    questions[i], decide(questions[i], outputs, contexts[i]), outputs, contexts[i]
                                ),
                            )
                        )
            except Exception as caught:  # keep what was answered; the caller reports
                named = (
                    questions[chunk[0]].id
                    if len(chunk) == 1
                    else f"{questions[chunk[0]].id}..{questions[chunk[-1]].id}"
                )
                failure, error = f"question {named!r}: {caught}", caught
            for _, result in sorted(answered, key=lambda pair: pair[0]):
                results.append(result)
                if on_result is not None:
                    on_result(result)
            if failure is not None:
                break
            m.advance(completed=len(results), questions=len(chunk))
    if planned is None:  # no budget: every question in the stage's orders
        planned = FirstPassPlan(
            tuple(level), sum(c[-1] for c in costs), pace.seconds_for(sum(c[-1] for c in costs)), math.inf, True
        )
    return FirstPassOutcome(results, pace, planned, cheapest, failure, error)


def _measure_pace(
    stage: LoadedStage, question: Question, contexts: list[RetrievedContext], tokens: int, clock: Callable[[], float]
) -> Pace:
    """Seconds per token on one reading of `question` (not kept); unmeasured where it fails (the pass
    then meets the failure on the question itself)."""
    began = clock()
    try:
        read_stage(stage, [question], [contexts])
    except Exception:
        return Pace()
    return Pace().add(clock() - began, tokens)
